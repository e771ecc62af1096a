"""Warehouse tables owned by Python (everything dbt does not build): raw landing tables, the loaded program
rules, and the append-only control tables. Idempotent: safe to run on every start."""

from __future__ import annotations

from .entities import ENTITIES, LINEAGE_COLUMNS, Entity

SCHEMAS = ("raw", "rules", "controls", "payouts")


# The raw tables' indexes (see docs/performance.md, Landing ingest). The rows of one partition arrive as one
# contiguous block (one COPY per load), so a BRIN index on _partition_date finds a partition's rows as well as a
# btree did (the loader's replace of a partition, lookups of changed partitions: bitmap scans of the partition's
# block ranges) for almost nothing to maintain during a load: a btree on a column whose value is the same for
# every row of a load cost the load about a quarter of its speed. Clicks have no index on click_id: no reader
# uses it (the incremental click model reads the raw table by partition), and it halved the speed of a load.
def raw_table_ddl(e: Entity) -> str:
    cols = [f"{c.column_name} {c.sql_type}" for c in e.columns]
    cols += [f"{name} {typ}" for name, typ in LINEAGE_COLUMNS]
    return (
        f"create table if not exists raw.{e.table} (\n  " + ",\n  ".join(cols) + "\n);\n"
        f"create index if not exists {e.table}__partition_brin on raw.{e.table} using brin (_partition_date);\n"
        # Warehouses created before the BRIN index had a btree on _partition_date: dropped here.
        f"drop index if exists raw.{e.table}__partition;\n"
    )


STATIC_DDL = """
-- Warehouses created before had a btree on raw clicks' click_id (see raw_table_ddl for why it went).
drop index if exists raw.links__clicks__click_id;

create table if not exists raw.rejected_rows (
  entity text not null,             -- e.g. crm/deals
  _partition_date date not null,
  _source_file text not null,       -- relative to the landing root, e.g. crm/deals/dt=2025-01-07/deals-part-0000.csv
  _line_number integer not null,    -- physical line; a CSV header is line 1, a JSONL file's first object is line 1
  raw_line text not null,
  reason text not null,
  _load_batch_id text not null,
  _loaded_at timestamptz not null
);
create index if not exists rejected_rows__partition on raw.rejected_rows (entity, _partition_date);

create table if not exists raw.load_batches (
  load_batch_id text primary key,
  entity text not null,
  partition_date date not null,
  files text[] not null,
  rows_loaded integer not null,
  rows_rejected integer not null,
  started_at timestamptz not null,
  finished_at timestamptz not null
);

create table if not exists rules.program (
  rules_sha256 text not null,
  program_currency text not null,
  payout_period text not null,
  source_file text not null,
  loaded_at timestamptz not null,
  batch_approval text not null default 'none'  -- none | required: finance signs each batch off (docs/finance.md)
);
-- Warehouses created before the sign-off setting: 'none', what they did.
alter table rules.program add column if not exists batch_approval text not null default 'none';
create table if not exists rules.versions (
  rules_version text primary key,   -- effective_from as YYYY-MM-DD
  effective_from date not null,
  effective_to date,                -- the next version's effective_from (exclusive); null for the latest
  attribution_model text not null,
  time_decay_half_life_days numeric not null,
  lookback_referral_days integer not null,
  lookback_marketing_days integer not null,
  lookback_link_click_days integer not null,
  max_clicks_per_ip_per_day integer not null,
  qualified_stage text not null,
  eligible_deal_types text[] not null,
  hold_referral_bonus_days integer not null,
  hold_qualified_bonus_days integer not null,
  hold_commission_days integer not null,
  clawback_days integer not null,
  commission_cap_per_deal numeric,
  minimum_payout numeric not null,
  quality_min_employee_count integer not null,
  quality_eligible_countries text[] not null
);
create table if not exists rules.tiers (
  rules_version text not null,
  tier_name text not null,
  min_trailing_revenue numeric not null,
  commission_rate numeric not null,
  referral_bonus numeric not null,
  qualified_bonus numeric not null,
  primary key (rules_version, tier_name)
);
create table if not exists rules.free_mail_domains (
  domain text primary key
);

-- Control tables (see docs/rules.md, Holds, review, disputes and approvals): append-only, every row says who, when and why.
create table if not exists controls.approvals (
  approval_id bigserial primary key,
  event_id text not null,
  created_by text not null,
  reason text not null,
  created_at timestamptz not null default clock_timestamp(),
  session_user_name text not null default session_user  -- the database login that wrote the row, beside --by
);
create table if not exists controls.disputes (
  dispute_action_id bigserial primary key,
  subject_type text not null check (subject_type in ('deal', 'referral')),
  subject_id text not null,
  action text not null check (action in ('open', 'resolve')),
  created_by text not null,
  reason text not null,
  created_at timestamptz not null default clock_timestamp(),
  session_user_name text not null default session_user  -- the database login that wrote the row, beside --by
);
create table if not exists controls.attribution_overrides (
  override_row_id bigserial primary key,
  override_set_id bigint not null,  -- rows written by one command share it; the greatest set per deal wins
  deal_id text not null,
  partner_id text not null,
  credit numeric not null check (credit > 0),
  created_by text not null,
  reason text not null,
  created_at timestamptz not null default clock_timestamp(),
  session_user_name text not null default session_user  -- the database login that wrote the row, beside --by
);
create sequence if not exists controls.attribution_override_set_seq;
-- Withdrawals of a deal's override (append-only). Ids come from the override set sequence, so a deal's sets and
-- withdrawals are ordered: its latest action wins (a withdrawal returns the deal to its computed attribution).
create table if not exists controls.attribution_override_withdrawals (
  withdrawal_id bigint primary key default nextval('controls.attribution_override_set_seq'),
  deal_id text not null,
  created_by text not null,
  reason text not null,
  created_at timestamptz not null default clock_timestamp(),
  session_user_name text not null default session_user  -- the database login that wrote the row, beside --by
);
"""


# Every control table records the database login (session_user) that wrote each row, beside the person named by
# --by. Warehouses created before the column existed get it here; rows written before then carry '' (unknown).
CONTROL_SESSION_USER_UPGRADE = """
do $$
declare t record;
begin
  for t in
    select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'controls' and c.relkind in ('r', 'p')
      and not exists (
        select 1 from pg_attribute a
        where a.attrelid = c.oid and a.attname = 'session_user_name' and not a.attisdropped
      )
  loop
    execute format('alter table controls.%I add column if not exists session_user_name text not null default %L',
                   t.relname, '');
    execute format('alter table controls.%I alter column session_user_name set default session_user', t.relname);
  end loop;
end $$;
"""


def all_ddl() -> str:
    parts = [f"create schema if not exists {s};" for s in SCHEMAS]
    parts += [raw_table_ddl(e) for e in ENTITIES]
    parts.append(STATIC_DDL)
    return "\n".join(parts)
