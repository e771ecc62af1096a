-- Program-wide settings of the rules file: one row.
with source as (
    select * from {{ source('rules', 'program') }}
),

renamed as (
    select
        rules_sha256,
        program_currency,
        payout_period,
        source_file,
        loaded_at
    from source
)

select * from renamed
