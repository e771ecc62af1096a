
-- One row per deal (latest version, deleted ones included) with what attribution and rewards need: the
-- program's "won" (is_won, closed_at set, not deleted), the account key (see docs/rules.md, Identity: account
-- keys), the rules version in force at created_at, the fx rate (latest rate_date on or before the UTC date of
-- closed_at for won deals, of created_at otherwise) and the commission base (amount minus reversals up to
-- closed_at + clawback_days, converted, floored at 0).
with deals as (
    select * from {{ ref('stg_crm__deals') }}
),

contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

versions as (
    select * from {{ ref('stg_rules__versions') }}
),

program as (
    select program_currency from {{ ref('stg_rules__program') }}
),

fx_rates as materialized (
    select * from {{ ref('stg_finance__fx_rates') }}
),

reversals as materialized (
    select * from {{ ref('stg_crm__deal_reversals') }}
),

base as (
    select
        d.deal_id,
        d.deal_type,
        d.stage,
        d.amount,
        d.currency,
        d.created_at,
        d.closed_at,
        d.is_deleted,
        (d.is_won and d.closed_at is not null and not d.is_deleted) as is_won,
        d.company_domain,
        d.primary_contact_id,
        c.email as primary_contact_email,
        {{ attr_account_key('d.company_domain', 'c.email') }} as account_key,
        case
            when d.is_won and d.closed_at is not null and not d.is_deleted then {{ utc_date('d.closed_at') }}
            else {{ utc_date('d.created_at') }}
        end as fx_lookup_date
    from deals as d
    left join contacts as c on c.contact_id = d.primary_contact_id
),

with_versions as (
    select
        b.*,
        va.rules_version as attribution_rules_version,
        va.attribution_model,
        vc.rules_version as closing_rules_version,
        vc.clawback_days
    from base as b
    left join versions as va on {{ version_in_force_on('va', utc_date('b.created_at')) }}
    left join versions as vc on {{ version_in_force_on('vc', utc_date('b.closed_at')) }}
),

with_fx as (
    select
        w.*,
        w.currency = p.program_currency as is_program_currency,
        r.rate_date as fx_rate_date,
        case when w.currency = p.program_currency then 1::numeric else r.rate end as fx_rate
    from with_versions as w
    cross join program as p
    left join lateral (
        select f.rate_date, f.rate
        from fx_rates as f
        where f.currency = w.currency and f.rate_date <= w.fx_lookup_date
        order by f.rate_date desc
        limit 1
    ) as r on w.currency <> p.program_currency
),

with_reversals as materialized (
    select
        x.*,
        coalesce((
            select sum(r.amount)
            from reversals as r
            where r.deal_id = x.deal_id
                and x.closed_at is not null
                and r.occurred_at <= {{ add_days('x.closed_at', 'x.clawback_days') }}
        ), 0) as reversals_in_window,
        coalesce((select sum(r.amount) from reversals as r where r.deal_id = x.deal_id), 0) as reversals_total
    from with_fx as x
)

select
    deal_id,
    deal_type,
    stage,
    amount,
    currency,
    created_at,
    closed_at,
    is_deleted,
    is_won,
    company_domain,
    primary_contact_id,
    primary_contact_email,
    account_key,
    attribution_rules_version,
    attribution_model,
    closing_rules_version,
    clawback_days,
    fx_lookup_date,
    fx_rate_date,
    fx_rate,
    fx_rate is not null as has_fx_rate,
    trim_scale({{ attr_precise('amount') }} / fx_rate) as amount_program,
    reversals_in_window,
    reversals_total,
    case
        when is_won then trim_scale({{ attr_precise('greatest(0, amount - reversals_in_window)') }} / fx_rate)
        else 0
    end as commission_base
from with_reversals
