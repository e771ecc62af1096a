-- Each model's credits (payout included) sum to 1 per deal, to 1e-12 (see docs/rules.md, The five models).
select deal_id, model, sum(credit) as total
from {{ ref('fct_attribution') }}
group by deal_id, model
having abs(sum(credit) - 1) > 1e-12
