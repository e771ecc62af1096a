-- One row per deal that entered its qualified stage: the first entered_at of a stage-history row whose stage
-- equals the qualified_stage of the rules version in force at that row's entered_at. Only deal_stage_history
-- decides (deals.stage does not).
select
    h.deal_id,
    min(h.entered_at) as qualified_at
from {{ ref('stg_crm__deal_stage_history') }} as h
inner join {{ ref('int_rewards__rule_versions') }} as v
    on {{ version_in_force_at('v', 'h.entered_at') }}
where h.stage = v.qualified_stage
group by h.deal_id
