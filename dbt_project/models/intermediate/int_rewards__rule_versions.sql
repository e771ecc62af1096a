-- One row per rules version with the window [effective_from, effective_until) of UTC dates in which it is
-- in force, and the parameters the reward models read.
select
    rules_version,
    effective_from,
    lead(effective_from) over (order by effective_from) as effective_until,
    qualified_stage,
    eligible_deal_types,
    hold_referral_bonus_days,
    hold_qualified_bonus_days,
    hold_commission_days,
    commission_cap_per_deal,
    quality_min_employee_count,
    quality_eligible_countries,
    lookback_referral_days
from {{ ref('stg_rules__versions') }}
