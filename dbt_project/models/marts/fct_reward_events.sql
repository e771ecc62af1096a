{{ config(materialized='view') }}
-- One row per reward event earned by the current data (fct_reward_entitlements), with its payout status as of
-- the published ledger (see docs/rules.md, Payout batches). Approvals, disputes and holds are decided by the
-- payout step; this view only reports what the latest published batch decided.
--
-- A view, so that the status follows the ledger, which the payout step writes after the entitlements are
-- built: in the Dagster graph it comes after the payout step (the `payouts` sources are that step's asset).
with events as (
    select * from {{ ref('fct_reward_entitlements') }}
),

published as (
    select batch_id, period, cutoff
    from {{ source('payouts', 'batches') }}
    where status = 'published'
),

-- The latest published batch: the ledger's "as of" for every status (at most one row).
latest_batch as (
    select batch_id, cutoff
    from published
    order by period desc
    limit 1
),

-- Per event: the sum of its lines in every published batch (one row per event_id).
paid as (
    select l.event_id, sum(l.amount) as paid_to_date
    from {{ source('payouts', 'ledger_lines') }} as l
    inner join published as b
        on b.batch_id = l.batch_id
    group by l.event_id
),

-- Per event: its line in the review queue of the latest batch. (batch_id, event_id) is the key of review_lines;
-- the group by states it, so that a query that does not select the ledger columns skips this join.
held as (
    select r.event_id, min(r.reasons) as reasons
    from {{ source('payouts', 'review_lines') }} as r
    inner join latest_batch as lb
        on lb.batch_id = r.batch_id
    group by r.event_id
),

-- Partners deferred below the minimum payout in the latest batch (distinct, for the same reason).
deferred as (
    select distinct d.partner_id
    from {{ source('payouts', 'deferred_partners') }} as d
    inner join latest_batch as lb
        on lb.batch_id = d.batch_id
),

-- Set-based left joins (hash joins at any size), each adding at most one row per event.
ledger as (
    select
        e.*,
        coalesce(p.paid_to_date, 0) as paid_to_date,
        h.reasons as held_reasons,
        d.partner_id is not null as partner_deferred,
        lb.batch_id as latest_published_batch_id,
        lb.cutoff as latest_cutoff
    from events as e
    left join latest_batch as lb
        on true
    left join paid as p
        on p.event_id = e.event_id
    left join held as h
        on h.event_id = e.event_id
    left join deferred as d
        on d.partner_id = e.partner_id
),

-- The latest published batch "considered" the event: payable by its cutoff, or paid before (see
-- docs/rules.md, What is due in a period), or held by it.
statuses as (
    select
        *,
        coalesce(payable_at <= latest_cutoff or paid_to_date <> 0 or held_reasons is not null, false) as considered
    from ledger
)

select
    event_id,
    event_type,
    partner_id,
    deal_id,
    referral_id,
    amount,
    earned_at,
    payable_at,
    tier,
    rules_version,
    payout_credit,
    commission_base,
    commission_rate,
    trailing_revenue,
    commission_cap_per_deal,
    paid_to_date,
    -- The statuses are exclusive and tried in this order (documented in fct_reward_events.yml).
    case
        when held_reasons is not null then 'held'
        when not considered then 'in_hold'
        when partner_deferred and paid_to_date <> amount then 'deferred'
        when paid_to_date = amount then 'paid'
        when paid_to_date <> 0 then 'partly_paid'
        else 'payable'
    end as status,
    held_reasons as hold_reasons,
    case when considered then latest_published_batch_id end as latest_batch_id
from statuses
