-- Program rules versions (see docs/rules.md, Which version is in force): one row per version; in force from
-- effective_from (inclusive) to effective_to (exclusive, null for the latest).
with source as (
    select * from {{ source('rules', 'versions') }}
),

renamed as (
    select
        rules_version,
        effective_from,
        effective_to,
        attribution_model,
        time_decay_half_life_days,
        lookback_referral_days,
        lookback_marketing_days,
        lookback_link_click_days,
        max_clicks_per_ip_per_day,
        qualified_stage,
        eligible_deal_types,
        hold_referral_bonus_days,
        hold_qualified_bonus_days,
        hold_commission_days,
        clawback_days,
        commission_cap_per_deal,
        minimum_payout,
        quality_min_employee_count,
        quality_eligible_countries
    from source
)

select * from renamed
