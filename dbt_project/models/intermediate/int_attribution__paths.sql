-- The path of each deal (see docs/rules.md, The path of a deal): one row per deal and eligible touchpoint
-- with the deal's account key and created_at - lookback_days[touch_type] <= occurred_at <= created_at, using
-- the rules version in force at the deal's created_at. Deleted deals have no path. path_position orders the
-- path by occurred_at, then touch_type (referral, marketing, link_click), then touch_id.
with deals as (
    select * from {{ ref('int_deals__enriched') }}
    where not is_deleted and account_key is not null
),

versions as (
    select * from {{ ref('stg_rules__versions') }}
),

touchpoints as (
    select * from {{ ref('int_touchpoints__touchpoints') }}
    where exclusion_reason is null and account_key is not null
),

on_path as (
    select
        d.deal_id,
        d.created_at as deal_created_at,
        v.rules_version,
        v.time_decay_half_life_days,
        t.touch_id,
        t.touch_type,
        t.partner_id,
        t.occurred_at,
        case t.touch_type when 'referral' then 1 when 'marketing' then 2 else 3 end as touch_type_order
    from deals as d
    inner join versions as v on v.rules_version = d.attribution_rules_version
    inner join touchpoints as t
        on t.account_key = d.account_key
        and t.occurred_at <= d.created_at
        and t.occurred_at >= {{ add_days(
            'd.created_at',
            "-case t.touch_type when 'referral' then v.lookback_referral_days"
            ~ " when 'marketing' then v.lookback_marketing_days else v.lookback_link_click_days end"
        ) }}
)

select
    deal_id,
    touch_id,
    touch_type,
    partner_id,
    occurred_at,
    deal_created_at,
    rules_version,
    time_decay_half_life_days,
    trim_scale(extract(epoch from deal_created_at - occurred_at)) as seconds_before_created,
    row_number() over (
        partition by deal_id order by occurred_at, touch_type_order, touch_id collate "C"
    )::integer as path_position,
    count(*) over (partition by deal_id)::integer as path_length
from on_path
