-- links/clicks (event): one row per click_id: the first occurrence (partition, file name, line); repeats are dropped and counted in _duplicate_count.
with source as (
    select * from {{ source('raw', 'links__clicks') }}
),

renamed as (
    select
        click_id,
        link_code,
        clicked_at,
        visitor_id,
        ip_hash,
        user_agent,
        country,
        referer_url,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_first_occurrence('renamed', ['click_id']) }}
)

select * from deduplicated
