-- Rows the loader rejected (see docs/rules.md, What gets rejected, and where it goes): one row per rejected
-- physical line of the latest load of its partition.
with source as (
    select * from {{ source('raw', 'rejected_rows') }}
),

renamed as (
    select
        entity,
        _partition_date,
        _source_file,
        _line_number,
        raw_line,
        reason,
        _load_batch_id,
        _loaded_at
    from source
)

select * from renamed
