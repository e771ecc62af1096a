-- Link clicks, incrementally (see docs/rules.md, Entities; Touchpoints and exclusions): one row per
-- click_id, its first occurrence (partition, file name, line), with the click's own fields and lineage only.
-- Anything that can change after the click landed (account key, click spam, exclusions, rules version) is
-- computed downstream at query time.
--
-- A nightly run reprocesses only the partitions whose current load batch this table has not seen (new days
-- and reruns of old days); the post-hook drops clicks whose partition was reloaded without them and that no
-- other partition carries. See the model's docs for why that is enough.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='click_id',
        indexes=[
            {'columns': ['click_id'], 'unique': True},
            {'columns': ['_partition_date', '_load_batch_id']},
        ],
        post_hook=[
            "delete from {{ this }} as t using {{ source('raw', 'load_batches') }} as b
             where b.entity = 'links/clicks' and b.partition_date = t._partition_date
                and b.load_batch_id <> t._load_batch_id",
            "{{ ensure_index('link_code') }}",
            "{{ ensure_index('visitor_id') }}",
            "{{ ensure_index('ip_hash') }}",
            "{{ ensure_index('clicked_at') }}",
        ],
    )
}}

-- not materialized: read several times below, each read keeps its own filter on the partition or click_id
with raw_clicks as not materialized (
    select
        click_id,
        link_code,
        clicked_at,
        visitor_id,
        ip_hash,
        user_agent,
        country,
        referer_url,
        _partition_date,
        _source_file,
        _line_number,
        _load_batch_id,
        _loaded_at
    from {{ source('raw', 'links__clicks') }}
),

{% if is_incremental() %}

-- Partitions loaded since this table last saw them: a load batch none of whose rows is here. A partition whose
-- rows are all repeats of earlier clicks (or that loaded zero rows) stays in this set and is re-read each
-- night; that is cheap and harmless.
{% set changed_partitions_sql %}
    select b.partition_date
    from {{ source('raw', 'load_batches') }} as b
    where b.entity = 'links/clicks'
        and not exists (
            select 1 from {{ this }} as t
            where t._partition_date = b.partition_date and t._load_batch_id = b.load_batch_id
        )
{% endset %}
{#- Whether one of them was built before (a rerun or backfill of a past day): only then can a kept click lose
    its first occurrence and need looking up in all of raw (the orphans below). -#}
{% set reloaded = execute and run_query(
    "select count(*) from (" ~ changed_partitions_sql ~ ") as c
     where exists (select 1 from " ~ this ~ " as t where t._partition_date = c.partition_date)"
).columns[0].values()[0] > 0 %}

changed_partitions as materialized (
    {{ changed_partitions_sql }}
),

-- (= any(array(...)): an index condition on the partition date, not a join over all raw clicks)
changed_rows as (
    select r.*
    from raw_clicks as r
    where r._partition_date = any(array(select partition_date from changed_partitions))
),

{% if reloaded %}
-- First occurrences kept here whose partition was reloaded: if the reload no longer carries the click, its
-- first occurrence may now be a repeat in another partition, looked up in all of raw (only reruns of old days
-- reach this).
orphans as (
    select t.click_id
    from {{ this }} as t
    where t._partition_date = any(array(select partition_date from changed_partitions))
        and not exists (select 1 from changed_rows as c where c.click_id = t.click_id)
),
{% endif %}

-- Every occurrence that can be the first one of an affected click: the changed partitions' rows, the first
-- occurrences already here from unchanged partitions, and all raw rows of the orphans.
occurrences as (
    select * from changed_rows

    union all

    select t.*
    from {{ this }} as t
    where t.click_id in (select click_id from changed_rows)
        and t._partition_date not in (select partition_date from changed_partitions)
    {% if reloaded %}

    union all

    select r.*
    from raw_clicks as r
    where r.click_id in (select click_id from orphans)
    {% endif %}
),

{% else %}

occurrences as (
    select * from raw_clicks
),

{% endif %}

first_occurrences as (
    {{ attr_first_occurrence('occurrences', ['click_id']) }}
)

select
    click_id,
    link_code,
    clicked_at,
    visitor_id,
    ip_hash,
    user_agent,
    country,
    referer_url,
    _partition_date,
    _source_file,
    _line_number,
    _load_batch_id,
    _loaded_at
from first_occurrences
