-- Data-quality counts for the data engineer and analysts (see docs/rules.md, Inputs; Identity: account keys;
-- Touchpoints and exclusions): one row per check and entity, zero counts included, so that a check that
-- stops firing shows 0 rather than disappearing.
{%- set entities = [
    'crm/partners', 'crm/companies', 'crm/contacts', 'crm/deals', 'crm/deal_stage_history', 'crm/referrals',
    'crm/deal_reversals', 'marketing/activities', 'links/links', 'links/clicks', 'links/conversions',
    'finance/fx_rates',
] %}
{%- set event_models = {
    'crm/deal_stage_history': 'stg_crm__deal_stage_history',
    'crm/deal_reversals': 'stg_crm__deal_reversals',
    'marketing/activities': 'stg_marketing__activities',
    'links/clicks': 'stg_links__clicks',
    'links/conversions': 'stg_links__conversions',
} %}

with rejected as (
    select entity, count(*) as n
    from {{ ref('stg_raw__rejected_rows') }}
    group by entity
),

-- one pass over the candidates (a view over every click): the unresolved ones, counted per type
unresolved as (
    select touch_type, resolution, count(*) as n
    from {{ ref('int_touchpoints__candidates') }}
    where resolution <> 'resolved'
    group by touch_type, resolution
),

touchpoints as (
    select * from {{ ref('int_touchpoints__touchpoints') }}
),

deals as (
    select * from {{ ref('int_deals__enriched') }}
    where not is_deleted
),

checks as (
    {%- for e in entities %}
    select
        'rejected_rows' as check_name,
        '{{ e }}' as entity,
        coalesce((select n from rejected where entity = '{{ e }}'), 0) as issue_count,
        'rows that failed their types or required fields (see raw.rejected_rows)' as description
    union all
    {%- endfor %}
    {%- for e, m in event_models.items() %}
    select
        'duplicate_events',
        '{{ e }}',
        {%- if e == 'links/clicks' %}
        -- the same number as sum(_duplicate_count) of {{ m }} (every raw row but one per click_id): the rows
        -- the loads stored (raw.load_batches) minus the incremental first occurrences, instead of
        -- de-duplicating all history's clicks again
        (select coalesce(sum(rows_loaded), 0) from {{ source('raw', 'load_batches') }} where entity = 'links/clicks')
            - (select count(*) from {{ ref('int_touchpoints__clicks') }}),
        {%- else %}
        (select coalesce(sum(_duplicate_count), 0) from {{ ref(m) }}),
        {%- endif %}
        'repeated event ids dropped (the first occurrence is kept)'
    union all
    {%- endfor %}
    {%- for e, t in [('crm/referrals', 'referral'), ('marketing/activities', 'marketing'), ('links/clicks', 'link_click')] %}
    {%- if t != 'referral' %}
    select
        'unresolved_partner_codes',
        '{{ e }}',
        (select coalesce(sum(n), 0) from unresolved where touch_type = '{{ t }}' and resolution = 'unknown_code'),
        'partner codes that match no link: no touchpoint'
    union all
    {%- endif %}
    select
        'unknown_partners',
        '{{ e }}',
        (select coalesce(sum(n), 0) from unresolved where touch_type = '{{ t }}' and resolution = 'unknown_partner'),
        'partner ids (of referrals or links) that match no partner: no touchpoint'
    union all
    {%- endfor %}
    select
        'unresolved_visitors',
        'links/clicks',
        (select count(*) from touchpoints where touch_type = 'link_click' and account_key is null),
        'click touchpoints whose visitor never converted: no account key, match no deal'
    union all
    select
        'unattributable_deals',
        'crm/deals',
        (select count(*) from deals where account_key is null),
        'live deals with no account key (no company domain and no usable contact email)'
    union all
    select
        'deals_missing_fx_rate',
        'crm/deals',
        (select count(*) from deals where not has_fx_rate),
        'live deals with no fx rate on or before their date: load finance/fx_rates'
)

select
    check_name,
    entity,
    issue_count::bigint as issue_count,
    description
from checks
