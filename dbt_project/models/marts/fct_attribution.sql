-- Attribution for analysts (see docs/rules.md, Attribution): one row per deal, partner and model. The five
-- models have a row for every partner on the deal's path (credit 0 included); model 'payout' has a row for
-- every partner with payout credit > 0 (override or model). attributed_revenue = credit x commission base, 0
-- unless the deal is won.
with deals as (
    select * from {{ ref('int_deals__enriched') }}
),

credits as (
    select deal_id, partner_id, model, credit, touch_count, 'model' as credit_source
    from {{ ref('int_attribution__credits') }}

    union all

    select deal_id, partner_id, 'payout', payout_credit, touch_count, source
    from {{ ref('int_attribution__payout_credits') }}
)

select
    c.deal_id,
    c.partner_id,
    c.model,
    c.credit,
    c.touch_count,
    d.is_won,
    case when d.is_won then c.credit * d.commission_base else 0 end as attributed_revenue,
    c.credit_source,
    d.attribution_rules_version,
    d.attribution_model as payout_model,
    d.commission_base
from credits as c
inner join deals as d on d.deal_id = c.deal_id
