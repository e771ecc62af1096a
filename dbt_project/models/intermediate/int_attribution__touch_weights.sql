-- Weights of each touch on a deal's path under the five models (see docs/rules.md, The five models): one row
-- per deal and touch. With n touches at positions 1..n, each model's weights sum to 1 per deal. time_decay's
-- raw weight is 0.5 ^ (seconds before created_at / (half-life days * 86400)), normalised; computed in numeric
-- with 30 decimals (trailing zeros trimmed).
with paths as (
    select * from {{ ref('int_attribution__paths') }}
),

raw_decay as (
    select
        *,
        power(
            {{ attr_precise('0.5') }},
            {{ attr_precise('seconds_before_created') }} / (time_decay_half_life_days * 86400)
        ) as time_decay_raw
    from paths
)

select
    deal_id,
    touch_id,
    touch_type,
    partner_id,
    occurred_at,
    path_position,
    path_length,
    case when path_position = 1 then 1 else 0 end::numeric as first_touch,
    case when path_position = path_length then 1 else 0 end::numeric as last_touch,
    trim_scale({{ attr_precise(1) }} / path_length) as linear,
    trim_scale(time_decay_raw / sum(time_decay_raw) over (partition by deal_id)) as time_decay,
    time_decay_raw,
    sum(time_decay_raw) over (partition by deal_id) as time_decay_raw_total,
    trim_scale(case
        when path_length = 1 then 1
        when path_length = 2 then 0.5
        when path_position in (1, path_length) then 0.4
        else {{ attr_precise('0.2') }} / (path_length - 2)
    end) as position_based
from raw_decay
