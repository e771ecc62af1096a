{#- Landing de-duplication (see docs/rules.md, Entities). File names compare in byte order (collate "C"). -#}

{#- Record entity: one row per key, the latest version: greatest version_column (when the entity has one),
    then the later partition date, the later file name, the later line. -#}
{% macro attr_latest_version(relation, key_columns, version_column=none) -%}
    select distinct on ({{ key_columns | join(', ') }}) *
    from {{ relation }}
    order by
        {{ key_columns | join(', ') }},
        {% if version_column %}{{ version_column }} desc,{% endif %}
        _partition_date desc,
        _source_file collate "C" desc,
        _line_number desc
{%- endmacro %}

{#- Event entity: one row per key, the first occurrence (partition date, file name, line); the repeats that
    were dropped are counted in _duplicate_count. -#}
{% macro attr_first_occurrence(relation, key_columns) -%}
    select distinct on ({{ key_columns | join(', ') }})
        *,
        (count(*) over (partition by {{ key_columns | join(', ') }}) - 1)::integer as _duplicate_count
    from {{ relation }}
    order by
        {{ key_columns | join(', ') }},
        _partition_date,
        _source_file collate "C",
        _line_number
{%- endmacro %}
