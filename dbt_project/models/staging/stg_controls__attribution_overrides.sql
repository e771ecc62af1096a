-- Attribution override rows (SPEC section 8), append-only: one row per (override set, partner).
with source as (
    select * from {{ source('controls', 'attribution_overrides') }}
),

renamed as (
    select
        override_row_id,
        override_set_id,
        deal_id,
        partner_id,
        credit,
        created_by,
        reason,
        created_at
    from source
)

select * from renamed
