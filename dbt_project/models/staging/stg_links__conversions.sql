-- links/conversions (event): one row per conversion_id: the first occurrence (partition, file name, line); repeats are dropped and counted in _duplicate_count.
with source as (
    select * from {{ source('raw', 'links__conversions') }}
),

renamed as (
    select
        conversion_id,
        visitor_id,
        email,
        event,
        converted_at,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_first_occurrence('renamed', ['conversion_id']) }}
)

select * from deduplicated
