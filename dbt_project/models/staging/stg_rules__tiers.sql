-- Tier table of each rules version (see docs/rules.md, Tiers): one row per rules_version and tier_name.
with source as (
    select * from {{ source('rules', 'tiers') }}
),

renamed as (
    select
        rules_version,
        tier_name,
        min_trailing_revenue,
        commission_rate,
        referral_bonus,
        qualified_bonus
    from source
)

select * from renamed
