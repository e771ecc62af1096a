{#- UTC calendar helpers for the reward models. Timestamps are timestamptz; the session time zone of the
    warehouse plays no part because every conversion goes through UTC explicitly. -#}

{% macro rewards_utc_date(ts) -%}
(({{ ts }}) at time zone 'UTC')::date
{%- endmacro %}

{% macro rewards_utc_month(ts) -%}
{#- First day of the UTC calendar month of a timestamptz, as a date. -#}
date_trunc('month', ({{ ts }}) at time zone 'UTC')::date
{%- endmacro %}

{% macro rewards_month_start_ts(month_date) -%}
{#- The first instant (timestamptz) of a month given as its first day (a date, or a timestamp in UTC). -#}
(({{ month_date }})::timestamp at time zone 'UTC')
{%- endmacro %}

{% macro rewards_add_days(ts, days) -%}
{#- ts + days calendar days, counted in UTC (a day is always 24 hours). -#}
((({{ ts }}) at time zone 'UTC') + make_interval(days => ({{ days }})::integer)) at time zone 'UTC'
{%- endmacro %}

{% macro rewards_in_force_on(versions, day) -%}
{#- Join condition: `versions` (an alias of int_rewards__rule_versions) is the rules version in force on the
    UTC date `day`: the latest effective_from on or before it. -#}
({{ versions }}.effective_from <= ({{ day }})
 and ({{ versions }}.effective_until is null or ({{ day }}) < {{ versions }}.effective_until))
{%- endmacro %}

{% macro rewards_in_force(versions, ts) -%}
{#- Join condition: `versions` is the rules version in force at the instant ts (timestamptz). -#}
{{ rewards_in_force_on(versions, rewards_utc_date(ts)) }}
{%- endmacro %}

{% macro rewards_run_date() -%}
{#- The nightly run's date: env var REFERRAL_RUN_DATE (YYYY-MM-DD, set by the pipeline for each run; an env var,
    not a --vars value, so that dbt's partial parsing survives from one run to the next), or var run_date (dbt
    unit tests), else today's UTC date. -#}
{%- set run_date = var('run_date', none) or env_var('REFERRAL_RUN_DATE', '') -%}
{%- if run_date -%}
cast('{{ run_date }}' as date)
{%- else -%}
(now() at time zone 'UTC')::date
{%- endif -%}
{%- endmacro %}

{% macro rewards_run_month() -%}
{#- First day of the UTC month of the run date. -#}
date_trunc('month', cast({{ rewards_run_date() }} as timestamp))::date
{%- endmacro %}
