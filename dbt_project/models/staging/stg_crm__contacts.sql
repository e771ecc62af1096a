-- crm/contacts (record): one row per contact_id: the version with the greatest updated_at; ties go to the later partition, file (name order), line.
with source as (
    select * from {{ source('raw', 'crm__contacts') }}
),

renamed as (
    select
        contact_id,
        email,
        first_name,
        last_name,
        company_domain,
        created_at,
        updated_at,
        is_deleted,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_latest_version('renamed', ['contact_id'], 'updated_at') }}
)

select * from deduplicated
