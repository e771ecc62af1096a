-- Weights of each touch on a deal's path under the five models (see docs/rules.md, The five models): one row
-- per deal and touch. With n touches at positions 1..n, each model's weights sum to 1 per deal. time_decay's
-- raw weight is 0.5 ^ (seconds before created_at / (half-life days * 86400)), normalised; computed in numeric
-- with 30 decimals (trailing zeros trimmed). The <model>_share / <model>_total columns are the rule itself.
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
),

shares as (
    -- Each model's rule, written once: a touch's weight is its share / the deal's total of shares. Credits
    -- (int_attribution__credits) sum a partner's shares and divide once by the same total.
    select
        *,
        case when path_position = 1 then 1 else 0 end::numeric as first_touch_share,
        1::numeric as first_touch_total,
        case when path_position = path_length then 1 else 0 end::numeric as last_touch_share,
        1::numeric as last_touch_total,
        1::numeric as linear_share,
        path_length::numeric as linear_total,
        time_decay_raw as time_decay_share,
        sum(time_decay_raw) over (partition by deal_id) as time_decay_total,
        -- n >= 3: 0.4 = 2(n-2) / 5(n-2) for t1 and tn, 0.2/(n-2) = 1 / 5(n-2) for the others.
        case
            when path_length <= 2 then 1
            when path_position in (1, path_length) then 2 * (path_length - 2)
            else 1
        end::numeric as position_based_share,
        case
            when path_length <= 2 then path_length
            else 5 * (path_length - 2)
        end::numeric as position_based_total
    from raw_decay
)

select
    deal_id,
    touch_id,
    touch_type,
    partner_id,
    occurred_at,
    path_position,
    path_length,
    first_touch_share as first_touch,
    last_touch_share as last_touch,
    trim_scale({{ attr_precise('linear_share') }} / linear_total) as linear,
    trim_scale(time_decay_share / time_decay_total) as time_decay,
    time_decay_raw,
    time_decay_total as time_decay_raw_total,
    trim_scale({{ attr_precise('position_based_share') }} / position_based_total) as position_based,
    first_touch_share,
    first_touch_total,
    last_touch_share,
    last_touch_total,
    linear_share,
    linear_total,
    time_decay_share,
    time_decay_total,
    position_based_share,
    position_based_total
from shares
