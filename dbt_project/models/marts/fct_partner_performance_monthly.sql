-- One row per partner and UTC calendar month in which the partner has any activity: referrals submitted,
-- qualified opportunities, won deals or reward events. Deals count for a partner when it has a payout credit
-- > 0 on them; deleted deals do not count.
with referrals as (
    select
        partner_id,
        {{ utc_month('submitted_at') }} as month,
        count(*) as referrals_submitted,
        count(*) filter (where is_accepted) as referrals_accepted,
        count(*) filter (where is_quality_lead) as quality_leads,
        count(*) filter (where is_accepted and is_won) as referrals_won
    from {{ ref('fct_referrals') }}
    group by 1, 2
),

qualified as (
    select
        c.partner_id,
        {{ utc_month('q.qualified_at') }} as month,
        count(*) as qualified_opportunities
    from {{ ref('int_rewards__qualifications') }} as q
    inner join {{ ref('int_rewards__deal_credits') }} as c on c.deal_id = q.deal_id
    group by 1, 2
),

won as (
    select
        partner_id,
        {{ utc_month('closed_at') }} as month,
        count(*) as deals_won,
        avg(amount_program) as average_deal_size,
        avg(extract(epoch from closed_at - created_at) / 86400) as average_days_to_close,
        sum(attributed_revenue) as attributed_revenue
    from {{ ref('int_rewards__deal_credits') }}
    where is_won
    group by 1, 2
),

rewards as (
    select
        partner_id,
        {{ utc_month('earned_at') }} as month,
        count(*) as reward_events,
        sum(amount) as rewards_earned
    from {{ ref('fct_reward_entitlements') }}
    group by 1, 2
),

spine as (
    select partner_id, month from referrals
    union
    select partner_id, month from qualified
    union
    select partner_id, month from won
    union
    select partner_id, month from rewards
)

select
    s.partner_id,
    s.month,
    coalesce(r.referrals_submitted, 0) as referrals_submitted,
    coalesce(r.referrals_accepted, 0) as referrals_accepted,
    coalesce(r.quality_leads, 0) as quality_leads,
    coalesce(q.qualified_opportunities, 0) as qualified_opportunities,
    coalesce(w.deals_won, 0) as deals_won,
    r.referrals_won::numeric / nullif(r.referrals_accepted, 0) as conversion_rate,
    w.average_deal_size,
    w.average_days_to_close,
    coalesce(w.attributed_revenue, 0) as attributed_revenue,
    coalesce(rw.reward_events, 0) as reward_events,
    coalesce(rw.rewards_earned, 0) as rewards_earned
from spine as s
left join referrals as r on r.partner_id = s.partner_id and r.month = s.month
left join qualified as q on q.partner_id = s.partner_id and q.month = s.month
left join won as w on w.partner_id = s.partner_id and w.month = s.month
left join rewards as rw on rw.partner_id = s.partner_id and rw.month = s.month
