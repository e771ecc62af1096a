-- Touchpoints (see docs/rules.md, Touchpoints and exclusions): one row per resolved touch, with its
-- exclusion_reason (null = eligible), in precedence partner_not_active, self_referral, click_spam.
with candidates as (
    select * from {{ ref('int_touchpoints__candidates') }}
    where resolution = 'resolved'
),

partners as (
    select * from {{ ref('stg_crm__partners') }}
),

owned_keys as (
    select * from {{ ref('int_identity__partner_account_keys') }}
),

spam as (
    select * from {{ ref('int_touchpoints__click_spam') }}
)

select
    c.touch_id,
    c.touch_type,
    c.partner_id,
    c.account_key,
    c.occurred_at,
    case
        when c.occurred_at < p.joined_at or (p.terminated_at is not null and c.occurred_at >= p.terminated_at)
            then 'partner_not_active'
        when exists (
            select 1 from owned_keys as o where o.partner_id = c.partner_id and o.account_key = c.account_key
        ) then 'self_referral'
        when c.touch_type = 'link_click' and exists (
            select 1
            from spam as s
            where s.ip_hash = c.ip_hash
                and s.link_code = c.partner_code
                and s.click_date = {{ utc_date('c.occurred_at') }}
        ) then 'click_spam'
    end as exclusion_reason,
    c.source_id,
    c.partner_code,
    c.visitor_id
from candidates as c
inner join partners as p on p.partner_id = c.partner_id
