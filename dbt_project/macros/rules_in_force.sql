{#- Which rules version is in force (see docs/rules.md, Which version is in force): "the version in force at an
    instant is the one with the latest effective_from on or before that instant's UTC date". The window of
    each version, [effective_from, effective_to), is computed once, when the rules file is written to the
    warehouse (referral_pipeline.rules.write_rules, the same rule as ProgramRules.version_at); every model
    joins through these two macros. -#}

{% macro version_in_force_on(v, day) -%}
{#- Join condition: rules version `v` (a row with effective_from / effective_to, e.g. stg_rules__versions) is in
    force on the UTC date `day`. -#}
({{ v }}.effective_from <= ({{ day }}) and ({{ v }}.effective_to is null or ({{ day }}) < {{ v }}.effective_to))
{%- endmacro %}

{% macro version_in_force_at(v, ts) -%}
{#- Join condition: rules version `v` is in force at the instant `ts` (timestamptz). -#}
{{ version_in_force_on(v, utc_date(ts)) }}
{%- endmacro %}
