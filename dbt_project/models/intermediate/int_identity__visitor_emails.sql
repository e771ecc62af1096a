-- Link-click identity (see docs/rules.md, Identity: account keys): one row per visitor that converted, with
-- the email of its earliest conversion (by converted_at, then conversion_id) and that email's account key.
-- Unique index on visitor_id: clicks look their visitor up by it, and a query that needs no column of it (the
-- counts of fct_data_quality over int_touchpoints__candidates) skips the join altogether.
{{ config(indexes=[{'columns': ['visitor_id'], 'unique': True}]) }}

with conversions as (
    select * from {{ ref('stg_links__conversions') }}
),

earliest as (
    select distinct on (visitor_id)
        visitor_id,
        email,
        conversion_id,
        converted_at
    from conversions
    order by visitor_id, converted_at, conversion_id collate "C"
)

select
    visitor_id,
    email,
    {{ attr_email_account_key('email') }} as account_key,
    conversion_id as first_conversion_id,
    converted_at as first_converted_at
from earliest
