-- Dispute actions (see docs/rules.md, Holds, review, disputes and approvals), append-only: one row per open or resolve action.
with source as (
    select * from {{ source('controls', 'disputes') }}
),

renamed as (
    select
        dispute_action_id,
        subject_type,
        subject_id,
        action,
        created_by,
        reason,
        created_at
    from source
)

select * from renamed
