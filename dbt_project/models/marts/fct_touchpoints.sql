{{ config(materialized='view') }}

-- Touchpoints for analysts (see docs/rules.md, Touchpoints and exclusions): one row per touchpoint.
select
    touch_id,
    touch_type,
    partner_id,
    account_key,
    occurred_at,
    exclusion_reason,
    exclusion_reason is null as is_eligible,
    source_id,
    partner_code,
    visitor_id
from {{ ref('int_touchpoints__touchpoints') }}
