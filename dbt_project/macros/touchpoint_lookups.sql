{#
  What a click touchpoint reads besides the click itself, one row per (kind, key), as text. The incremental
  int_touchpoints__touchpoints keeps the state it last built from in a side table and recomputes only the clicks
  whose lookups differ now (see that model's docs):

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
    select 'click_partition' as kind, b.partition_date::text as key, b.load_batch_id as value
    from {{ source('raw', 'load_batches') }} as b
    where b.entity = 'links/clicks'

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


{#- The side table holding the lookups of the last build, next to the model (none before the first build). -#}
{% macro touchpoint_lookups_relation() -%}
    {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier ~ '__lookups')) }}
{%- endmacro %}


{#- Post-hook: remember the lookups this build used (in the model's transaction). -#}
{% macro save_touchpoint_lookups() -%}
    drop table if exists {{ this.schema }}.{{ this.identifier }}__lookups;
    create table {{ this.schema }}.{{ this.identifier }}__lookups as
    {{ touchpoint_lookups() }}
{%- endmacro %}

