{#
  The state an incremental model last built from, kept in a side table next to it ({{ this.identifier }}__state,
  written by the model's post-hook in its own transaction). A state is a query of rows (kind, key, value), all
  text: e.g. one row per click partition with its current load batch. An incremental run compares the state now
  with the saved one to find what changed since its last build (see int_touchpoints__touchpoints and
  int_touchpoints__click_spam, whose docs say what invalidates which rows).
#}

{#- The side table of the model being built, or none (first build, or a table built before it existed). -#}
{% macro saved_state() -%}
    {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier ~ '__state')) }}
{%- endmacro %}


{#- Post-hook: save the state this build used. -#}
{% macro save_state(state_sql) -%}
    drop table if exists {{ this.schema }}.{{ this.identifier }}__state;
    create table {{ this.schema }}.{{ this.identifier }}__state as
    {{ state_sql }}
{%- endmacro %}


{#- Per kind, how many saved rows are gone or changed (`gone`) and how many rows are new or changed (`new`)
    in the state now: {kind: {'gone': n, 'new': m}}. Asked at run time (an empty dict while dbt parses). -#}
{% macro state_changes(saved, state_sql) -%}
    {%- set changes = {} -%}
    {%- if execute and saved is not none -%}
        {%- set result = run_query(
            "with now_state as (" ~ state_sql ~ "), saved as (select kind, key, value from " ~ saved ~ "),
             gone as (select kind, key, value from saved except select kind, key, value from now_state),
             new as (select kind, key, value from now_state except select kind, key, value from saved)
             select kind, 'gone' as side, count(*) from gone group by kind
             union all
             select kind, 'new', count(*) from new group by kind"
        ) -%}
        {%- for row in result.rows -%}
            {%- do changes.setdefault(row[0], {'gone': 0, 'new': 0}).update({row[1]: row[2] | int}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(changes) }}
{%- endmacro %}


{#- The state of the raw click partitions: one row per partition date with its current load batch. A saved row
    that is gone means a partition was loaded again (or removed): the clicks of old days may have changed. -#}
{% macro click_partitions_state() -%}
    select 'click_partition' as kind, b.partition_date::text as key, b.load_batch_id as value
    from {{ source('raw', 'load_batches') }} as b
    where b.entity = 'links/clicks'
{%- endmacro %}
