-- Approvals of reward events (SPEC section 8), append-only: one row per approval.
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
