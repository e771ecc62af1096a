{#- Rules helpers (see docs/rules.md, Which version is in force): "the version in force at an instant is the
    one with the latest effective_from on or before that instant's UTC date". -#}

{#- The UTC calendar date of a timestamptz. -#}
{% macro attr_utc_date(ts) -%}
    (({{ ts }}) at time zone 'UTC')::date
{%- endmacro %}

{#- Join condition: rules version `v` (a stg_rules__versions row) is in force on the UTC date `day`. -#}
{% macro attr_version_in_force(v, day) -%}
    ({{ v }}.effective_from <= ({{ day }}) and ({{ v }}.effective_to is null or ({{ day }}) < {{ v }}.effective_to))
{%- endmacro %}

{#- A whole number of days as an exact duration (24-hour days, independent of the session time zone). -#}
{% macro attr_days(n) -%}
    make_interval(hours => 24 * ({{ n }}))
{%- endmacro %}

{#- A numeric with 30 decimals, so that divisions by it or of it keep at least 20 significant digits (credits
    are exact, see docs/rules.md, The five models); PostgreSQL's division keeps the larger display scale of
    its operands. -#}
{% macro attr_precise(x) -%}
    round(({{ x }})::numeric, 30)
{%- endmacro %}
