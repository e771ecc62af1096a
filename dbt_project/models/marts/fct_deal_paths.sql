-- Partner paths with their outcome, the input of the data-driven attribution models (see docs/analytics.md):
-- one row per deal and eligible touch on its path, exactly the rows of int_attribution__paths (same account
-- key, within the lookback of the version in force at created_at, not after created_at; deleted deals and
-- deals without an account key have no path), with the deal's outcome. won: the program's won (is_won,
-- closed_at set, not deleted); lost: closed_at set and not won; open: not closed yet. Open deals are not
-- resolved: the fit leaves them out, and they only receive credits from it.
with paths as (
    select * from {{ ref('int_attribution__paths') }}
),

deals as (
    select * from {{ ref('int_deals__enriched') }}
)

select
    p.deal_id,
    p.touch_id,
    p.touch_type,
    p.partner_id,
    p.occurred_at,
    p.path_position,
    p.path_length,
    case
        when d.is_won then 'won'
        when d.closed_at is not null then 'lost'
        else 'open'
    end as outcome,
    d.is_won,
    d.deal_type,
    d.created_at as deal_created_at,
    d.closed_at,
    (d.closed_at at time zone 'UTC')::date as closed_on,
    d.commission_base
from paths as p
inner join deals as d on d.deal_id = p.deal_id
