-- One row per partner: its latest record and its tier as of the run date (the tier an event earned on the
-- run date would get, under the rules version in force that day).
select
    p.partner_id,
    p.name,
    p.email,
    p.company_domain,
    p.partner_type,
    p.status,
    p.joined_at,
    p.terminated_at,
    p.payout_currency,
    p.tax_form_on_file,
    p.country,
    p.updated_at,
    t.tier_name as current_tier,
    t.trailing_revenue as current_trailing_revenue,
    v.rules_version as current_rules_version,
    {{ run_date() }} as tier_as_of
from {{ ref('stg_crm__partners') }} as p
left join {{ ref('int_rewards__rule_versions') }} as v
    on {{ version_in_force_on('v', run_date()) }}
left join {{ ref('int_tiers__partner_months') }} as t
    on t.partner_id = p.partner_id
    and t.tier_month = {{ run_month() }}
    and t.rules_version = v.rules_version
