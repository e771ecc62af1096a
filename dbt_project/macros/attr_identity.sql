{#- Account keys (see docs/rules.md, Identity: account keys). Domains and emails arrive normalised
    (lower-case; domain fields without a leading www.). -#}

{#- Whether a domain is a free-mail domain of the rules file. -#}
{% macro attr_is_free_mail(domain) -%}
    exists (select 1 from {{ ref('stg_rules__free_mail_domains') }} as fm where fm.domain = ({{ domain }}))
{%- endmacro %}

{#- The account key of an email: `domain:d` unless its domain d is free-mail, then `email:e`. -#}
{% macro attr_email_account_key(email) -%}
    case
        when ({{ email }}) is null then null
        when {{ attr_is_free_mail("split_part(" ~ email ~ ", '@', 2)") }} then 'email:' || ({{ email }})
        else 'domain:' || split_part({{ email }}, '@', 2)
    end
{%- endmacro %}

{#- The account key of a row with a company domain and an email: `domain:company_domain` when that domain is
    present and not free-mail, else the email's account key (null when there is neither). -#}
{% macro attr_account_key(company_domain, email) -%}
    case
        when ({{ company_domain }}) is not null and not {{ attr_is_free_mail(company_domain) }}
            then 'domain:' || ({{ company_domain }})
        else {{ attr_email_account_key(email) }}
    end
{%- endmacro %}
