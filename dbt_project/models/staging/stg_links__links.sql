-- links/links (record): one row per link_code: the later partition, then file (name order), then line wins.
with source as (
    select * from {{ source('raw', 'links__links') }}
),

renamed as (
    select
        link_code,
        partner_id,
        destination_url,
        created_at,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_latest_version('renamed', ['link_code']) }}
)

select * from deduplicated
