-- crm/referrals (record): one row per referral_id: the version with the greatest updated_at; ties go to the later partition, file (name order), line.
with source as (
    select * from {{ source('raw', 'crm__referrals') }}
),

renamed as (
    select
        referral_id,
        partner_id,
        contact_email,
        company_domain,
        submitted_at,
        status,
        accepted_at,
        updated_at,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_latest_version('renamed', ['referral_id'], 'updated_at') }}
)

select * from deduplicated
