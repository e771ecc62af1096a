-- Partner x month x rules version: the partner's trailing revenue for events earned in that month under that
-- version, and the tier it reaches (see docs/rules.md, Tiers). Rows exist for every (partner, month, version)
-- of a reward event, and for every partner in the month of the run (for dim_partners).
-- Trailing revenue: won deals of a type eligible under that version, closed in [month - 12 months, month),
-- summing commission base x payout credit, with what is known at this run.
with keys as (
    select distinct partner_id, tier_month, rules_version
    from {{ ref('int_rewards__event_candidates') }}
    union
    select p.partner_id, {{ run_month() }}, v.rules_version
    from {{ ref('stg_crm__partners') }} as p
    inner join {{ ref('int_rewards__rule_versions') }} as v
        on {{ version_in_force_on('v', run_date()) }}
),

revenue as (
    select
        k.partner_id,
        k.tier_month,
        k.rules_version,
        coalesce(sum(c.attributed_revenue), 0) as trailing_revenue,
        count(c.deal_id) as trailing_deal_count
    from keys as k
    inner join {{ ref('int_rewards__rule_versions') }} as v on v.rules_version = k.rules_version
    left join {{ ref('int_rewards__deal_credits') }} as c
        on c.partner_id = k.partner_id
        and c.is_won
        and c.deal_type = any(v.eligible_deal_types)
        and c.closed_at >= {{ month_start_ts("k.tier_month - interval '12 months'") }}
        and c.closed_at < {{ month_start_ts('k.tier_month') }}
    group by k.partner_id, k.tier_month, k.rules_version
)

select distinct on (r.partner_id, r.tier_month, r.rules_version)
    r.partner_id,
    r.tier_month,
    r.rules_version,
    r.trailing_revenue,
    r.trailing_deal_count,
    t.tier_name,
    t.min_trailing_revenue,
    t.commission_rate,
    t.referral_bonus,
    t.qualified_bonus
from revenue as r
inner join {{ ref('stg_rules__tiers') }} as t
    on t.rules_version = r.rules_version
    and t.min_trailing_revenue <= r.trailing_revenue
order by r.partner_id, r.tier_month, r.rules_version, t.min_trailing_revenue desc
