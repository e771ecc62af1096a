-- crm/deals (record): one row per deal_id: the version with the greatest updated_at; ties go to the later partition, file (name order), line.
with source as (
    select * from {{ source('raw', 'crm__deals') }}
),

renamed as (
    select
        deal_id,
        primary_contact_id,
        company_domain,
        deal_name,
        deal_type,
        stage,
        amount,
        currency,
        created_at,
        closed_at,
        is_won,
        updated_at,
        is_deleted,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_latest_version('renamed', ['deal_id'], 'updated_at') }}
)

select * from deduplicated
