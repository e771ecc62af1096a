{#- Fails for every row (matching `where`) on which `expression` is not true. -#}
{% test attribution_expression_true(model, expression, where=none, column_name=none) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
    {% if where %}and ({{ where }}){% endif %}
{% endtest %}
