-- Approvals of reward events (see docs/rules.md, Holds, review, disputes and approvals), append-only: one row per approval.
with source as (
    select * from {{ source('controls', 'approvals') }}
),

renamed as (
    select
        approval_id,
        event_id,
        created_by,
        reason,
        created_at
    from source
)

select * from renamed
