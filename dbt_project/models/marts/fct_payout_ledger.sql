{{ config(materialized='view') }}
-- One row per paid line of a published payout batch (see docs/rules.md, Payout batches). A view over the
-- append-only ledger that the payout step writes after dbt: always current, nothing to rebuild. Batches
-- recorded but not yet published are left out. Lines of one partner and batch share the partner's payout
-- currency and fx rate.
select
    l.batch_id,
    b.period,
    b.cutoff,
    l.event_id,
    l.event_type,
    l.partner_id,
    l.deal_id,
    l.referral_id,
    l.earned_at,
    l.payable_at,
    l.entitlement,
    l.previously_paid,
    l.amount,
    b.program_currency,
    p.payout_currency,
    p.fx_rate
from {{ source('payouts', 'ledger_lines') }} as l
inner join {{ source('payouts', 'batches') }} as b
    on b.batch_id = l.batch_id
    and b.status = 'published'
-- A paid line always has its partner's payout (the payout step records both); a left join so that a broken
-- ledger shows up as a null payout_currency (tested) instead of a silently missing line.
left join {{ source('payouts', 'partner_payouts') }} as p
    on p.batch_id = l.batch_id
    and p.partner_id = l.partner_id
