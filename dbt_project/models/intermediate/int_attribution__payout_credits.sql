-- Payout credits (see docs/rules.md, The payout credit and overrides): one row per deal and partner with
-- payout_credit > 0. The credit under the attribution_model of the rules version in force at the deal's
-- created_at, unless the deal has an attribution override: then the latest override set (greatest
-- override_set_id) replaces it, even where the path is empty. Deleted deals have none.
with deals as (
    select * from {{ ref('int_deals__enriched') }}
    where not is_deleted
),

credits as (
    select * from {{ ref('int_attribution__credits') }}
),

overrides as (
    select * from {{ ref('stg_controls__attribution_overrides') }}
),

latest_override_sets as (
    select deal_id, max(override_set_id) as override_set_id
    from overrides
    group by deal_id
),

from_overrides as (
    select
        o.deal_id,
        o.partner_id,
        o.credit as payout_credit,
        'override' as source,
        d.attribution_model,
        coalesce(c.touch_count, 0) as touch_count,
        o.override_set_id
    from overrides as o
    inner join latest_override_sets as l on l.deal_id = o.deal_id and l.override_set_id = o.override_set_id
    inner join deals as d on d.deal_id = o.deal_id
    left join credits as c on c.deal_id = o.deal_id and c.partner_id = o.partner_id and c.model = d.attribution_model
),

from_model as (
    select
        c.deal_id,
        c.partner_id,
        c.credit as payout_credit,
        'model' as source,
        d.attribution_model,
        c.touch_count,
        null::bigint as override_set_id
    from credits as c
    inner join deals as d on d.deal_id = c.deal_id and c.model = d.attribution_model
    where c.credit > 0
        and not exists (select 1 from latest_override_sets as l where l.deal_id = c.deal_id)
)

select * from from_overrides
union all
select * from from_model
