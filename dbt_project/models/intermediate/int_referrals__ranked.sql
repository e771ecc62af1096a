-- One row per referral (every status), with its touchpoint's account key and exclusion, its rank among the
-- registrations of its account (first-to-register) and whether its lead is a quality lead (see
-- docs/rules.md, Reward events).
with referrals as (
    select
        r.referral_id,
        r.partner_id,
        r.contact_email,
        r.company_domain,
        r.status,
        r.submitted_at,
        r.accepted_at,
        t.account_key,
        t.exclusion_reason,
        r.status = 'accepted' and t.touch_id is not null and t.exclusion_reason is null as is_registration
    from {{ ref('stg_crm__referrals') }} as r
    left join {{ ref('fct_touchpoints') }} as t
        on t.touch_type = 'referral' and t.touch_id = 'ref:' || r.referral_id
),

ranked as (
    -- Ranking over every accepted, not-excluded referral of the account key, with or without accepted_at
    -- and whether or not its lead is a quality lead.
    select
        referrals.*,
        case when is_registration then
            row_number() over (
                partition by account_key, is_registration order by submitted_at, referral_id
            )
        end as registration_rank
    from referrals
),

first_wins as (
    -- An account is an existing customer from its first won deal's close on. One row per account key: the
    -- check below is a hash join, not a search of every won deal per referral (which grew with both).
    select account_key, min(closed_at) as first_won_at
    from {{ ref('int_deals__enriched') }}
    where is_won and account_key is not null
    group by account_key
),

quality as (
    -- Parameters of the version in force at accepted_at; no accepted_at, no verdict yet.
    select
        r.referral_id,
        v.rules_version as quality_rules_version,
        c.employee_count as company_employee_count,
        c.country as company_country,
        coalesce(w.first_won_at < r.submitted_at, false) as is_existing_customer,
        coalesce(
            r.account_key like 'domain:%'
            and c.employee_count >= v.quality_min_employee_count
            and (
                cardinality(v.quality_eligible_countries) = 0
                or upper(c.country) = any(v.quality_eligible_countries)
            ),
            false
        ) as meets_company_criteria
    from ranked as r
    inner join {{ ref('int_rewards__rule_versions') }} as v
        on {{ version_in_force_at('v', 'r.accepted_at') }}
    left join {{ ref('stg_crm__companies') }} as c
        on r.account_key = 'domain:' || c.company_domain
    left join first_wins as w on w.account_key = r.account_key
    where r.accepted_at is not null and r.account_key is not null
)

select
    r.referral_id,
    r.partner_id,
    r.contact_email,
    r.company_domain,
    r.status,
    r.submitted_at,
    r.accepted_at,
    r.account_key,
    r.exclusion_reason,
    r.is_registration,
    r.registration_rank,
    coalesce(r.registration_rank = 1, false) as is_first_to_register,
    q.quality_rules_version,
    q.company_employee_count,
    q.company_country,
    q.is_existing_customer,
    q.meets_company_criteria and not q.is_existing_customer as is_quality_lead
from ranked as r
left join quality as q on q.referral_id = r.referral_id
