{#
  A pre-hook for a model materialized as `incremental` (strategy append) that is recomputed in full every run:
  it empties the table inside the model's transaction, before the new rows are appended. The effect is that of
  a `table` model (the same rows), but the relation is never dropped, so views that read it (and their grants
  and comments) survive, and readers see the previous rows until the run commits. --full-refresh rebuilds it.
#}
{% macro refresh_in_place() -%}
  {%- if is_incremental() -%} delete from {{ this }} {%- else -%} select 1 {%- endif -%}
{%- endmacro %}
