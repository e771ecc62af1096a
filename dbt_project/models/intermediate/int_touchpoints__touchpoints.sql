-- Touchpoints (see docs/rules.md, Touchpoints and exclusions): one row per resolved touch, with its
-- exclusion_reason (null = eligible), in precedence partner_not_active, self_referral, click_spam.
--
-- Incremental (see the model's docs for what invalidates which rows and why the result equals a full build):
-- referral and marketing touches are recomputed every run; a click's touchpoint only when the click is new or
-- one of its lookups (link, partner, owned keys, visitor, spam group) differs from the last build's, which the
-- post-hook saves as the model's state (macros/incremental_state.sql). A reloaded click partition, or a
-- missing state, recomputes every click. Rows that no longer exist are written as removal markers (partner_id
-- null) and deleted by the first post-hook in the same transaction.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='touch_id',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['touch_id'], 'unique': True},
            {'columns': ['touch_type']},
            {'columns': ['account_key']},
        ],
        post_hook=[
            "delete from {{ this }} where partner_id is null",
            "{{ save_state(touchpoint_lookups()) }}",
        ],
    )
}}

-- depends_on: {{ ref('int_touchpoints__clicks') }}
-- depends_on: {{ ref('stg_links__links') }}
-- depends_on: {{ ref('int_identity__visitor_emails') }}
-- depends_on: {{ source('raw', 'load_batches') }}

{% set saved = saved_state() if is_incremental() else none %}
{# recompute only what changed, unless a click partition already built was loaded again #}
{% set delta = saved is not none
    and state_changes(saved, touchpoint_lookups()).get('click_partition', {}).get('gone', 0) == 0 %}

-- not materialized: the filters of the incremental run reach the view's click branch (index on click_id)
with candidates as not materialized (
    select * from {{ ref('int_touchpoints__candidates') }}
    where resolution = 'resolved'
),

partners as (
    select * from {{ ref('stg_crm__partners') }}
),

owned_keys as (
    select * from {{ ref('int_identity__partner_account_keys') }}
),

spam as (
    select * from {{ ref('int_touchpoints__click_spam') }}
),

{% if delta %}

clicks as not materialized (
    select * from {{ ref('int_touchpoints__clicks') }}
),

current_lookups as (
    {{ touchpoint_lookups() }}
),

previous_lookups as (
    select kind, key, value from {{ saved }}
),

-- Lookups that were added, removed or changed since the last build.
changed as materialized (
    (select kind, key, value from current_lookups except select kind, key, value from previous_lookups)
    union
    (select kind, key, value from previous_lookups except select kind, key, value from current_lookups)
),

-- Partners whose status or owned keys changed, and the links that name them now or named them before.
changed_partners as (
    select key as partner_id from changed where kind in ('partner', 'owned')
),

changed_links as (
    select key as link_code from changed where kind = 'link'
    union
    select l.key from current_lookups as l
    where l.kind = 'link' and l.value in (select partner_id from changed_partners)
    union
    select l.key from previous_lookups as l
    where l.kind = 'link' and l.value in (select partner_id from changed_partners)
),

-- Clicks whose touchpoint may differ from the last build: new partitions (only new ones: a reloaded
-- partition takes the full path), changed links or partners, visitors whose account key changed, and the
-- click-spam groups that appeared or disappeared.
affected_clicks as materialized (
    select k.click_id from clicks as k
    where k._partition_date in (select key::date from changed where kind = 'click_partition')
    union
    select k.click_id from clicks as k
    where k.link_code in (select link_code from changed_links)
    union
    select k.click_id from clicks as k
    where k.visitor_id in (select key from changed where kind = 'visitor')
    union
    select k.click_id
    from clicks as k
    inner join changed as s
        on s.kind = 'spam'
        and k.ip_hash = s.key
        and k.link_code || '|' || {{ utc_date('k.clicked_at') }}::text = s.value
),

affected_ids as materialized (
    select 'clk:' || click_id as touch_id from affected_clicks
),

scope as (
    select * from candidates
    where touch_type in ('referral', 'marketing')

    union all

    select * from candidates
    where touch_type = 'link_click' and source_id = any(array(select click_id from affected_clicks))
),

{% else %}

scope as (
    select * from candidates
),

{% endif %}

touchpoints as (
    select
        c.touch_id,
        c.touch_type,
        c.partner_id,
        c.account_key,
        c.occurred_at,
        case
            when c.occurred_at < p.joined_at or (p.terminated_at is not null and c.occurred_at >= p.terminated_at)
                then 'partner_not_active'
            when exists (
                select 1 from owned_keys as o where o.partner_id = c.partner_id and o.account_key = c.account_key
            ) then 'self_referral'
            when c.touch_type = 'link_click' and exists (
                select 1
                from spam as s
                where s.ip_hash = c.ip_hash
                    and s.link_code = c.partner_code
                    and s.click_date = {{ utc_date('c.occurred_at') }}
            ) then 'click_spam'
        end as exclusion_reason,
        c.source_id,
        c.partner_code,
        c.visitor_id
    from scope as c
    inner join partners as p on p.partner_id = c.partner_id
)

select * from touchpoints

{% if is_incremental() %}

union all

-- Removal markers: touchpoints of the last build, within what this run recomputed, that no longer exist.
select
    t.touch_id,
    t.touch_type,
    null as partner_id,
    null as account_key,
    t.occurred_at,
    null as exclusion_reason,
    t.source_id,
    t.partner_code,
    t.visitor_id
from (
    {%- if delta %}
    select * from {{ this }} where touch_type in ('referral', 'marketing')
    union all
    select * from {{ this }} where touch_id = any(array(select touch_id from affected_ids))
    {%- else %}
    select * from {{ this }}
    {%- endif %}
) as t
where not exists (select 1 from touchpoints as n where n.touch_id = t.touch_id)

{% endif %}
