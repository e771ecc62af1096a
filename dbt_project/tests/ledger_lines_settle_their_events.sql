-- Every line of fct_payout_ledger settles its event (see docs/rules.md, What is due in a period):
-- previously_paid is the sum of the event's lines in earlier published batches, previously_paid + amount =
-- entitlement, and a line is never 0.
select batch_id, event_id, previously_paid, earlier_lines, entitlement, amount
from (
    select
        batch_id,
        event_id,
        previously_paid,
        entitlement,
        amount,
        coalesce(sum(amount) over (
            partition by event_id order by period rows between unbounded preceding and 1 preceding
        ), 0) as earlier_lines
    from {{ ref('fct_payout_ledger') }}
) as lines
where previously_paid <> earlier_lines
    or previously_paid + amount <> entitlement
    or amount = 0
