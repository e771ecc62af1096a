-- One row per referral (every status): the referral funnel. The referral's deal is the account's first
-- non-deleted deal (by created_at, then deal_id) created at or after submitted_at and within the referral
-- lookback of the rules version in force at the deal's created_at, i.e. a deal whose attribution window
-- contains the referral.
with referrals as (
    select * from {{ ref('int_referrals__ranked') }}
),

referral_deals as (
    select distinct on (r.referral_id)
        r.referral_id,
        d.deal_id,
        d.created_at,
        d.closed_at,
        d.is_won,
        d.amount_program
    from referrals as r
    inner join {{ ref('int_deals__enriched') }} as d
        on d.account_key = r.account_key
        and not d.is_deleted
        and d.created_at >= r.submitted_at
    inner join {{ ref('int_rewards__rule_versions') }} as v
        on {{ version_in_force_at('v', 'd.created_at') }}
    where r.submitted_at >= {{ add_days('d.created_at', '-v.lookback_referral_days') }}
    order by r.referral_id, d.created_at, d.deal_id
),

bonuses as (
    select referral_id, amount
    from {{ ref('fct_reward_entitlements') }}
    where event_type = 'referral_bonus'
)

select
    r.referral_id,
    r.partner_id,
    r.account_key,
    r.status,
    r.submitted_at,
    r.accepted_at,
    r.status = 'accepted' as is_accepted,
    r.exclusion_reason,
    r.is_quality_lead,
    r.is_existing_customer,
    r.is_first_to_register,
    r.registration_rank,
    b.referral_id is not null as earned_referral_bonus,
    b.amount as referral_bonus_amount,
    rd.deal_id,
    rd.deal_id is not null as is_deal_created,
    rd.created_at as deal_created_at,
    q.qualified_at,
    q.qualified_at is not null as is_qualified,
    coalesce(rd.is_won, false) as is_won,
    case when rd.is_won then rd.closed_at end as won_at,
    case when rd.is_won then rd.amount_program end as won_amount_program,
    case when rd.is_won then {{ utc_date('rd.closed_at') }} - {{ utc_date('r.submitted_at') }} end
        as days_to_close
from referrals as r
left join referral_deals as rd on rd.referral_id = r.referral_id
left join {{ ref('int_rewards__qualifications') }} as q on q.deal_id = rd.deal_id
left join bonuses as b on b.referral_id = r.referral_id
