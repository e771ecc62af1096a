-- crm/partners (record): one row per partner_id: the version with the greatest updated_at; ties go to the later partition, file (name order), line.
with source as (
    select * from {{ source('raw', 'crm__partners') }}
),

renamed as (
    select
        partner_id,
        name,
        email,
        company_domain,
        partner_type,
        status,
        joined_at,
        terminated_at,
        payout_currency,
        tax_form_on_file,
        country,
        updated_at,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_latest_version('renamed', ['partner_id'], 'updated_at') }}
)

select * from deduplicated
