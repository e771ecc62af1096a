-- Click-spam groups (see docs/rules.md, Exclusions): one row per hashed ip, link_code and UTC date with more
-- clicks than the max_clicks_per_ip_per_day of the rules version in force on that date. Counted over all
-- de-duplicated clicks with an ip, resolved or not; every click of such a group is excluded.
with clicks as (
    select * from {{ ref('int_touchpoints__clicks') }}
),

versions as (
    select * from {{ ref('stg_rules__versions') }}
),

groups as (
    select
        ip_hash,
        link_code,
        {{ utc_date('clicked_at') }} as click_date,
        count(*) as click_count
    from clicks
    where ip_hash is not null
    group by 1, 2, 3
)

select
    g.ip_hash,
    g.link_code,
    g.click_date,
    g.click_count,
    v.rules_version,
    v.max_clicks_per_ip_per_day
from groups as g
inner join versions as v on {{ version_in_force_on('v', 'g.click_date') }}
where g.click_count > v.max_clicks_per_ip_per_day
