-- Attribution override rows (see docs/rules.md, Holds, review, disputes and approvals), append-only: one row per (override set, partner). A set is left out
-- once a later withdrawal of its deal is recorded (set ids and withdrawal ids share one sequence): the latest
-- action per deal wins, and a deal whose latest action is a withdrawal has no rows, so it goes back to its
-- computed attribution.
with source as (
    select * from {{ source('controls', 'attribution_overrides') }}
),

withdrawals as (
    select deal_id, max(withdrawal_id) as last_withdrawal_id
    from {{ source('controls', 'attribution_override_withdrawals') }}
    group by deal_id
),

renamed as (
    select
        s.override_row_id,
        s.override_set_id,
        s.deal_id,
        s.partner_id,
        s.credit,
        s.created_by,
        s.reason,
        s.created_at
    from source as s
    left join withdrawals as w
        on w.deal_id = s.deal_id
    where w.last_withdrawal_id is null
        or s.override_set_id > w.last_withdrawal_id
)

select * from renamed
