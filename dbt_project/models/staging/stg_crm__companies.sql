-- crm/companies (record): one row per company_domain: the version with the greatest updated_at; ties go to the later partition, file (name order), line.
with source as (
    select * from {{ source('raw', 'crm__companies') }}
),

renamed as (
    select
        company_domain,
        name,
        employee_count,
        country,
        industry,
        updated_at,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_latest_version('renamed', ['company_domain'], 'updated_at') }}
)

select * from deduplicated
