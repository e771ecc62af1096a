-- Credits (see docs/rules.md, Attribution): one row per deal, partner on the path and model (first_touch,
-- last_touch, linear, time_decay, position_based). A partner's credit is the sum of its touches' weights (0
-- included); touch_count is the number of the partner's touches on the path. Every model divides
-- once (the partner's shares over the deal's total), so a partner holding every touch gets exactly 1 rather
-- than a sum of rounded quotients.
with weights as (
    select * from {{ ref('int_attribution__touch_weights') }}
),

per_partner as (
    -- The partner's shares over the deal's total (the rule lives in int_attribution__touch_weights).
    select
        deal_id,
        partner_id,
        count(*)::integer as touch_count,
        {%- for m in ['first_touch', 'last_touch', 'linear', 'time_decay', 'position_based'] %}
        {{ attr_precise('sum(' ~ m ~ '_share)') }} / max({{ m }}_total) as {{ m }}{{ ',' if not loop.last }}
        {%- endfor %}
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
