{{ config(materialized='view') }}

-- Every would-be touchpoint (see docs/rules.md, Touchpoints and exclusions), resolved or not: accepted
-- referrals, marketing activities with a partner code, and link clicks. resolution says whether the partner
-- code and the partner resolve; only 'resolved' rows become touchpoints, the others are counted in data
-- quality.
with referrals as (
    select * from {{ ref('stg_crm__referrals') }}
),

codes as (
    select * from {{ ref('int_touchpoints__partner_codes') }}
),

clicks as (
    select * from {{ ref('int_touchpoints__clicks') }}
),

links as (
    select * from {{ ref('stg_links__links') }}
),

partners as (
    select * from {{ ref('stg_crm__partners') }}
),

visitors as (
    select * from {{ ref('int_identity__visitor_emails') }}
),

unioned as (
    select
        'ref:' || r.referral_id as touch_id,
        'referral' as touch_type,
        r.referral_id as source_id,
        r.submitted_at as occurred_at,
        null::text as partner_code,
        r.partner_id as claimed_partner_id,
        {{ attr_account_key('r.company_domain', 'r.contact_email') }} as account_key,
        null::text as visitor_id,
        null::text as ip_hash
    from referrals as r
    where r.status = 'accepted'

    union all

    select
        'ma:' || c.activity_id,
        'marketing',
        c.activity_id,
        c.occurred_at,
        c.partner_code,
        l.partner_id,
        {{ attr_email_account_key('c.email') }},
        null::text,
        null::text
    from codes as c
    left join links as l on l.link_code = c.partner_code

    union all

    select
        'clk:' || k.click_id,
        'link_click',
        k.click_id,
        k.clicked_at,
        k.link_code,
        l.partner_id,
        v.account_key,
        k.visitor_id,
        k.ip_hash
    from clicks as k
    left join links as l on l.link_code = k.link_code
    left join visitors as v on v.visitor_id = k.visitor_id
)

select
    u.touch_id,
    u.touch_type,
    u.source_id,
    u.occurred_at,
    u.partner_code,
    case when p.partner_id is not null then u.claimed_partner_id end as partner_id,
    u.claimed_partner_id,
    u.account_key,
    u.visitor_id,
    u.ip_hash,
    case
        when u.touch_type <> 'referral' and u.claimed_partner_id is null then 'unknown_code'
        when p.partner_id is null then 'unknown_partner'
        else 'resolved'
    end as resolution
from unioned as u
left join partners as p on p.partner_id = u.claimed_partner_id
