-- Credits (see docs/rules.md, Attribution): one row per deal, partner on the path and model (first_touch,
-- last_touch, linear, time_decay, position_based). A partner's credit is the sum of its touches' weights (0
-- included); touch_count is the number of the partner's touches on the path. linear, time_decay and
-- position_based credits divide once (the partner's share of the touches, of the raw decay weight, of the
-- middle share), so a partner holding every touch gets exactly 1 rather than a sum of rounded quotients.
with weights as (
    select * from {{ ref('int_attribution__touch_weights') }}
),

per_partner as (
    select
        deal_id,
        partner_id,
        count(*)::integer as touch_count,
        sum(first_touch) as first_touch,
        sum(last_touch) as last_touch,
        {{ attr_precise('count(*)') }} / max(path_length) as linear,
        sum(time_decay_raw) / max(time_decay_raw_total) as time_decay,
        case
            when max(path_length) = 1 then 1
            when max(path_length) = 2 then 0.5 * count(*)
            else 0.4 * count(*) filter (where path_position in (1, path_length))
                + {{ attr_precise('0.2') }} * count(*) filter (where path_position not in (1, path_length))
                / (max(path_length) - 2)
        end as position_based
    from weights
    group by deal_id, partner_id
)

select p.deal_id, p.partner_id, m.model, trim_scale(m.credit) as credit, p.touch_count
from per_partner as p
cross join lateral (
    values
        ('first_touch', p.first_touch),
        ('last_touch', p.last_touch),
        ('linear', p.linear),
        ('time_decay', p.time_decay),
        ('position_based', p.position_based)
) as m (model, credit)
