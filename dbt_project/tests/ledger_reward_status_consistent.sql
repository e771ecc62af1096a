-- fct_reward_events agrees with fct_payout_ledger: paid_to_date is the sum of the event's published lines; a
-- `paid` event is paid exactly its amount; hold_reasons is set exactly for `held`; latest_batch_id is null
-- exactly for `in_hold`, and only `in_hold` events can be ahead of the latest published cutoff.
with lines as (
    select event_id, sum(amount) as paid
    from {{ ref('fct_payout_ledger') }}
    group by event_id
),

latest as (
    select max(cutoff) as cutoff
    from {{ source('payouts', 'batches') }}
    where status = 'published'
)

select e.event_id, e.status, e.paid_to_date, l.paid as ledger_paid
from {{ ref('fct_reward_events') }} as e
left join lines as l
    on l.event_id = e.event_id
where e.paid_to_date <> coalesce(l.paid, 0)
    or (e.status = 'paid' and e.paid_to_date <> e.amount)
    or (e.status = 'partly_paid' and (e.paid_to_date = 0 or e.paid_to_date = e.amount))
    or ((e.status = 'held') <> (e.hold_reasons is not null))
    or ((e.status = 'in_hold') <> (e.latest_batch_id is null))
    or (e.status <> 'in_hold' and e.paid_to_date = 0 and e.payable_at > (select cutoff from latest))
