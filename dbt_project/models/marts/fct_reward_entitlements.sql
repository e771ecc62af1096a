-- What each partner is entitled to (see docs/rules.md, Reward events): one row per reward event earned by the
-- current data, with its amount in program currency. Amounts are rounded once, to 2 places, half away from zero
-- (PostgreSQL round(numeric, 2)); events of 0.00 are kept. The payout step's one input: a table with a
-- contract (fct_reward_entitlements.yml), built by dbt before the payout step runs. Payout statuses are in
-- fct_reward_events, a view over this table and the ledger.
select
    e.event_id,
    e.event_type,
    e.partner_id,
    e.deal_id,
    e.referral_id,
    round(
        case e.event_type
            when 'referral_bonus' then t.referral_bonus
            when 'qualified_bonus' then t.qualified_bonus * e.payout_credit
            -- least() ignores a null cap: no cap.
            when 'commission' then least(e.commission_cap_per_deal, e.commission_base * t.commission_rate * e.payout_credit)
        end,
        2
    ) as amount,
    e.earned_at,
    {{ add_days('e.earned_at', 'e.hold_days') }} as payable_at,
    t.tier_name as tier,
    e.rules_version,
    e.payout_credit,
    e.commission_base,
    t.commission_rate,
    t.trailing_revenue,
    e.commission_cap_per_deal
from {{ ref('int_rewards__event_candidates') }} as e
inner join {{ ref('int_tiers__partner_months') }} as t
    on t.partner_id = e.partner_id
    and t.tier_month = e.tier_month
    and t.rules_version = e.rules_version
