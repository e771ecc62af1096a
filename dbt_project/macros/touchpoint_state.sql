{#
  What a click touchpoint reads besides the click itself, one row per (kind, key), as text. The incremental
  int_touchpoints__touchpoints saves them as its state (macros/incremental_state.sql) and recomputes only the
  clicks whose lookups differ now (see that model's docs):

    click_partition  partition date of raw links/clicks        -> its current load batch
    link             link_code                                 -> partner_id the link names
    partner          partner_id                                -> joined_at | terminated_at (a row = it exists)
    owned            partner_id                                -> the account keys the partner owns
    visitor          visitor_id of a converted visitor         -> its account key
    spam             hashed ip of a click-spam group           -> link_code | UTC date of the group

  Everything is computed values (account keys after the free-mail rule, spam groups after the threshold of the
  rules version in force), so a change of the rules that moves a click's touchpoint shows up here too.
#}
{% macro touchpoint_lookups() -%}
    {{ click_partitions_state() }}

    union all

    select 'link', l.link_code, l.partner_id
    from {{ ref('stg_links__links') }} as l

    union all

    select 'partner', p.partner_id, coalesce(p.joined_at::text, '') || '|' || coalesce(p.terminated_at::text, '')
    from {{ ref('stg_crm__partners') }} as p

    union all

    select 'owned', o.partner_id, string_agg(o.account_key, ' ' order by o.account_key collate "C")
    from {{ ref('int_identity__partner_account_keys') }} as o
    group by o.partner_id

    union all

    select 'visitor', v.visitor_id, v.account_key
    from {{ ref('int_identity__visitor_emails') }} as v

    union all

    select 'spam', s.ip_hash, s.link_code || '|' || s.click_date::text
    from {{ ref('int_touchpoints__click_spam') }} as s
{%- endmacro %}


{#- What a click-spam group reads besides the clicks: the click partitions (new ones bring the clicks to count)
    and the rules versions (the threshold in force on each date). Saved by int_touchpoints__click_spam. -#}
{% macro click_spam_state() -%}
    {{ click_partitions_state() }}

    union all

    select
        'rules_version',
        v.rules_version,
        v.effective_from::text || '|' || coalesce(v.effective_to::text, '') || '|' || v.max_clicks_per_ip_per_day::text
    from {{ ref('stg_rules__versions') }} as v
{%- endmacro %}
