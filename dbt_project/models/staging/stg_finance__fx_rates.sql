-- finance/fx_rates (record): one row per rate_date, currency: the later partition, then file (name order), then line wins.
with source as (
    select * from {{ source('raw', 'finance__fx_rates') }}
),

renamed as (
    select
        rate_date,
        currency,
        rate,
        _partition_date,
        _source_file,
        _line_number,
        _loaded_at
    from source
),

deduplicated as (
    {{ attr_latest_version('renamed', ['rate_date', 'currency']) }}
)

select * from deduplicated
