{#- Models land in exactly the schema their folder names (staging, intermediate, marts), not target_schema.
    `referral-pipeline simulate` sets REFERRAL_DBT_SCHEMA_PREFIX (e.g. sim_<id>_) so that a what-if build lands
    in scratch schemas (sim_<id>_staging, ...) and never touches the real ones; unset, nothing changes. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- set prefix = env_var('REFERRAL_DBT_SCHEMA_PREFIX', '') | trim -%}
  {{ prefix }}{%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
