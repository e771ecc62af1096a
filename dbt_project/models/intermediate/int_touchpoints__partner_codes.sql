-- Partner codes of marketing activities (see docs/rules.md, Touchpoints and exclusions): one row per activity
-- that carries a code. The code is the first non-blank `ref` query parameter of landing_url, else utm_content
-- when lower-cased utm_medium is partner, referral or affiliate; codes are trimmed.
with activities as (
    select * from {{ ref('stg_marketing__activities') }}
),

parsed as (
    select
        activity_id,
        email,
        occurred_at,
        {{ attr_query_param('landing_url', 'ref') }} as ref_code,
        case
            when lower(utm_medium) in ('partner', 'referral', 'affiliate') then nullif(trim(utm_content), '')
        end as utm_code
    from activities
)

select
    activity_id,
    email,
    occurred_at,
    coalesce(ref_code, utm_code) as partner_code,
    case when ref_code is not null then 'landing_url_ref' else 'utm_content' end as code_source
from parsed
where coalesce(ref_code, utm_code) is not null
