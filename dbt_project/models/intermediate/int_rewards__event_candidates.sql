-- Every reward event that the current data earns (see docs/rules.md, Reward events), before its tier and
-- amount: what it is, who earns it, when, under which rules version, and the inputs of its amount. Grain:
-- reward event.
with referral_bonus as (
    select
        'referral_bonus:' || referral_id as event_id,
        'referral_bonus' as event_type,
        partner_id,
        cast(null as text) as deal_id,
        referral_id,
        cast(null as text) as deal_type,
        accepted_at as earned_at,
        cast(1 as numeric) as payout_credit,
        cast(null as numeric) as commission_base
    from {{ ref('int_referrals__ranked') }}
    where is_first_to_register
      and is_quality_lead
      and accepted_at is not null
),

qualified_bonus as (
    select
        'qualified_bonus:' || c.deal_id || ':' || c.partner_id,
        'qualified_bonus',
        c.partner_id,
        c.deal_id,
        cast(null as text),
        c.deal_type,
        q.qualified_at,
        c.payout_credit,
        cast(null as numeric)
    from {{ ref('int_rewards__qualifications') }} as q
    inner join {{ ref('int_rewards__deal_credits') }} as c on c.deal_id = q.deal_id
),

commission as (
    select
        'commission:' || deal_id || ':' || partner_id,
        'commission',
        partner_id,
        deal_id,
        cast(null as text),
        deal_type,
        closed_at,
        payout_credit,
        commission_base
    from {{ ref('int_rewards__deal_credits') }}
    where is_won
),

events as (
    select * from referral_bonus
    union all
    select * from qualified_bonus
    union all
    select * from commission
)

-- Every parameter comes from the version in force at earned_at, the eligible deal types included.
select
    e.event_id,
    e.event_type,
    e.partner_id,
    e.deal_id,
    e.referral_id,
    e.earned_at,
    {{ utc_month('e.earned_at') }} as tier_month,
    v.rules_version,
    e.payout_credit,
    e.commission_base,
    case e.event_type
        when 'referral_bonus' then v.hold_referral_bonus_days
        when 'qualified_bonus' then v.hold_qualified_bonus_days
        when 'commission' then v.hold_commission_days
    end as hold_days,
    v.commission_cap_per_deal
from events as e
inner join {{ ref('int_rewards__rule_versions') }} as v
    on {{ version_in_force_at('v', 'e.earned_at') }}
where e.deal_type is null or e.deal_type = any(v.eligible_deal_types)
