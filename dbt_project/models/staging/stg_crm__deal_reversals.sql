-- crm/deal_reversals (event): one row per reversal_id: the first occurrence (partition, file name, line); repeats are dropped and counted in _duplicate_count.
with source as (
    select * from {{ source('raw', 'crm__deal_reversals') }}
),

renamed as (
    select
        reversal_id,
        deal_id,
        reversal_type,
        amount,
        occurred_at,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_first_occurrence('renamed', ['reversal_id']) }}
)

select * from deduplicated
