{#- Generic data tests of the reward models. -#}

{% test rewards_unique_combination(model, columns) %}
{#- No two rows share the values of `columns` (the model's grain). -#}
select {{ columns | join(', ') }}, count(*) as row_count
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{% test rewards_non_negative(model, column_name) %}
select {{ column_name }} from {{ model }} where {{ column_name }} < 0
{% endtest %}
