"""Assets: one module per source system (crm, marketing, links, finance), plus rules, dbt and payouts."""
