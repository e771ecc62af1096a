{#- Calendar helpers, all in UTC (see docs/rules.md, Time). Timestamps are timestamptz; the session time zone of
    the warehouse plays no part because every conversion goes through UTC explicitly. Every model takes its
    dates from here. -#}

{% macro utc_date(ts) -%}
{#- The UTC calendar date of a timestamptz. -#}
(({{ ts }}) at time zone 'UTC')::date
{%- endmacro %}

{% macro utc_month(ts) -%}
{#- First day of the UTC calendar month of a timestamptz, as a date. -#}
date_trunc('month', ({{ ts }}) at time zone 'UTC')::date
{%- endmacro %}

{% macro date_start_ts(day) -%}
{#- The first instant (timestamptz) of a UTC calendar date (a date, or a timestamp in UTC). -#}
(({{ day }})::timestamp at time zone 'UTC')
{%- endmacro %}

{% macro month_start_ts(month_date) -%}
{#- The first instant (timestamptz) of a month given as its first day. -#}
{{ date_start_ts(month_date) }}
{%- endmacro %}

{% macro add_days(ts, days) -%}
{#- ts + a whole number of days, a day being exactly 24 hours (UTC has no daylight saving, so this is also
    "the same time of day, `days` UTC calendar days later"). `days` may be negative. -#}
(({{ ts }}) + make_interval(hours => 24 * ({{ days }})::integer))
{%- endmacro %}

{% macro run_date() -%}
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

{% macro run_month() -%}
{#- First day of the UTC month of the run date. -#}
date_trunc('month', cast({{ run_date() }} as timestamp))::date
{%- endmacro %}
