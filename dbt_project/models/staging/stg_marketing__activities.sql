-- marketing/activities (event): one row per activity_id: the first occurrence (partition, file name, line); repeats are dropped and counted in _duplicate_count.
with source as (
    select * from {{ source('raw', 'marketing__activities') }}
),

renamed as (
    select
        activity_id,
        email,
        activity_type,
        occurred_at,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_content,
        landing_url,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_first_occurrence('renamed', ['activity_id']) }}
)

select * from deduplicated
