-- Account keys a partner owns (see docs/rules.md, Identity: account keys): `domain:{company_domain}` when the
-- partner's company domain is present and not free-mail, and the account key of the partner's own email. One
-- row per partner and key.
with partners as (
    select * from {{ ref('stg_crm__partners') }}
),

owned as (
    select
        partner_id,
        'domain:' || company_domain as account_key,
        'company_domain' as key_source
    from partners
    where company_domain is not null and not {{ attr_is_free_mail('company_domain') }}

    union all

    select
        partner_id,
        {{ attr_email_account_key('email') }} as account_key,
        'email' as key_source
    from partners
)

select distinct on (partner_id, account_key)
    partner_id,
    account_key,
    key_source
from owned
order by partner_id, account_key, key_source
