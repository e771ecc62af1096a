-- Deal x partner with a payout credit > 0, with what the reward models need of the deal.
-- Deleted deals earn nothing and are left out.
select
    c.deal_id,
    c.partner_id,
    c.payout_credit,
    d.deal_type,
    d.is_won,
    d.created_at,
    d.closed_at,
    d.account_key,
    d.amount_program,
    d.commission_base,
    d.commission_base * c.payout_credit as attributed_revenue
from {{ ref('int_attribution__payout_credits') }} as c
inner join {{ ref('int_deals__enriched') }} as d on d.deal_id = c.deal_id
where c.payout_credit > 0
  and not d.is_deleted
