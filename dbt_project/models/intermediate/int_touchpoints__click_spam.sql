-- Click-spam groups (see docs/rules.md, Exclusions): one row per hashed ip, link_code and UTC date with more
-- clicks than the max_clicks_per_ip_per_day of the rules version in force on that date. Counted over all
-- de-duplicated clicks with an ip, resolved or not; every click of such a group is excluded.
--
-- Incremental by UTC date (see the model's docs): a run recomputes the dates of the clicks of new click
-- partitions; a click partition loaded again or a change of the rules versions recomputes every date. A date
-- recomputed with no spam group left is written as a removal marker (ip_hash null), deleted by the post-hook.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='click_date',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['click_date']}],
        post_hook=[
            "delete from {{ this }} where ip_hash is null",
            "{{ save_state(click_spam_state()) }}",
        ],
    )
}}

-- depends_on: {{ source('raw', 'load_batches') }}

{% set saved = saved_state() if is_incremental() else none %}
{% set changes = state_changes(saved, click_spam_state()) %}
{# only new click partitions since the last build: recompute their clicks' dates #}
{% set delta = saved is not none
    and changes.get('click_partition', {}).get('gone', 0) == 0
    and 'rules_version' not in changes %}

with clicks as not materialized (
    select * from {{ ref('int_touchpoints__clicks') }}
),

versions as (
    select * from {{ ref('stg_rules__versions') }}
),

{% if delta %}

saved_state as (
    select kind, key, value from {{ saved }}
),

new_partitions as (
    select key::date as partition_date from ({{ click_partitions_state() }}) as s
    except
    select key::date from saved_state where kind = 'click_partition'
),

dates as materialized (
    select distinct {{ utc_date('k.clicked_at') }} as click_date
    from clicks as k
    where k._partition_date in (select partition_date from new_partitions)
),

scope as (
    select k.*
    from dates as d
    inner join clicks as k
        on k.clicked_at >= {{ date_start_ts('d.click_date') }}
        and k.clicked_at < {{ date_start_ts('d.click_date + 1') }}
),

{% else %}

scope as (
    select * from clicks
),

{% endif %}

groups as (
    select
        ip_hash,
        link_code,
        {{ utc_date('clicked_at') }} as click_date,
        count(*) as click_count
    from scope
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

{% if is_incremental() %}

union all

-- Removal markers: one per recomputed date, so that a date left without spam groups loses its old rows.
select
    null as ip_hash,
    null as link_code,
    d.click_date,
    null as click_count,
    null as rules_version,
    null as max_clicks_per_ip_per_day
from (
    {%- if delta %}
    select click_date from dates
    {%- else %}
    select distinct click_date from {{ this }}
    {%- endif %}
) as d

{% endif %}
