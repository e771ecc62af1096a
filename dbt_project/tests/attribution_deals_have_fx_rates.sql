{{ config(severity='error', store_failures=true, schema='data_quality_failures') }}
-- Every live deal converts to the program currency (see docs/rules.md, Money and FX): a deal without a rate
-- on or before its date is a data error that stops the run (and so publishing). The failing rows say what to
-- load.
select
    deal_id,
    currency,
    fx_lookup_date,
    'deal ' || deal_id || ': no fx rate for ' || currency || ' on or before ' || fx_lookup_date
    || ': load finance/fx_rates' as message
from {{ ref('int_deals__enriched') }}
where not is_deleted and not has_fx_rate
