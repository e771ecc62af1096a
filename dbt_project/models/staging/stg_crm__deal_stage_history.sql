-- crm/deal_stage_history (event): one row per deal_id, stage, entered_at: the first occurrence (partition, file name, line); repeats are dropped and counted in _duplicate_count.
with source as (
    select * from {{ source('raw', 'crm__deal_stage_history') }}
),

renamed as (
    select
        deal_id,
        stage,
        entered_at,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_first_occurrence('renamed', ['deal_id', 'stage', 'entered_at']) }}
)

select * from deduplicated
