-- Free-mail domains of the rules file (see docs/rules.md, Identity: account keys): one row per domain.
with source as (
    select * from {{ source('rules', 'free_mail_domains') }}
),

renamed as (
    select domain
    from source
)

select * from renamed
