-- One row per rules version with the window [effective_from, effective_to) of UTC dates in which it is
-- in force, and the parameters the reward models read.
select
    rules_version,
    effective_from,
    effective_to,  -- the window is computed once, when the rules are written (see macros/rules_in_force.sql)
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
