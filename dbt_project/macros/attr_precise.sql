{#- A numeric with 30 decimals, so that divisions by it or of it keep at least 20 significant digits (credits
    are exact, see docs/rules.md, The five models); PostgreSQL's division keeps the larger display scale of
    its operands. -#}
{% macro attr_precise(x) -%}
    round(({{ x }})::numeric, 30)
{%- endmacro %}
