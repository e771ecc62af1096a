-- Per published batch and partner, the lines of fct_payout_ledger add up to the partner's payout (amount and
-- line count), and per batch to the batch's control totals (payouts = lines = ledger; see docs/finance.md,
-- Verifying a batch).
with lines as (
    select batch_id, partner_id, sum(amount) as amount, count(*) as line_count
    from {{ ref('fct_payout_ledger') }}
    group by batch_id, partner_id
),

payouts as (
    select p.batch_id, p.partner_id, p.amount, p.line_count
    from {{ source('payouts', 'partner_payouts') }} as p
    inner join {{ source('payouts', 'batches') }} as b
        on b.batch_id = p.batch_id
        and b.status = 'published'
),

per_batch as (
    select batch_id, sum(amount) as amount, sum(line_count) as line_count
    from lines
    group by batch_id
)

select 'partner' as level, coalesce(l.batch_id, p.batch_id) as batch_id, coalesce(l.partner_id, p.partner_id) as partner_id
from lines as l
full join payouts as p
    on p.batch_id = l.batch_id
    and p.partner_id = l.partner_id
where l.amount is distinct from p.amount
    or l.line_count is distinct from p.line_count

union all

select 'batch', b.batch_id, null
from {{ source('payouts', 'batches') }} as b
left join per_batch as t
    on t.batch_id = b.batch_id
where b.status = 'published'
    and (coalesce(t.amount, 0) <> b.program_amount or coalesce(t.line_count, 0) <> b.line_count)
