"""Least-privilege group roles for the warehouse (`referral-pipeline warehouse roles`; docs/operations.md,
Least-privilege roles).

Five NOLOGIN group roles, each allowed exactly what one part of the pipeline or one kind of user needs:

- {prefix}_loader: the landing loader; reads and writes the `raw` tables (it deletes a partition's rows before
  loading it again), nothing else.
- {prefix}_transformer: dbt and the rules step; reads `raw`, `rules`, `controls` and `payouts` (the ledger views
  read it), replaces the `rules` tables, creates and replaces objects in `staging`, `intermediate`, `marts` (the
  data-driven attribution tables there too) and `data_quality_failures` (a dbt test's failing rows).
- {prefix}_payouts: the payout step; reads `marts` and `staging` (its inputs: marts.fct_reward_entitlements,
  staging.stg_crm__partners, staging.stg_finance__fx_rates), rules.program, rules.versions, controls.approvals,
  controls.disputes, controls.batch_decisions (the sign-off of a batch); inserts into the ledger (`payouts.*`)
  and updates only `status` and `published_at` of payouts.batches (publishing; the ledger's trigger refuses it
  for a batch awaiting approval). No UPDATE or DELETE on any other ledger table.
- {prefix}_finance: the control commands; inserts into and reads `controls` (never UPDATE or DELETE), the batch
  sign-off (`batch approve|reject`: a row in controls.batch_decisions) included, reads the ledger (`payouts`),
  `marts` and `staging` to check what it is asked to approve, dispute or override. It does not publish: an
  approved batch is published by the payouts step (the next nightly run, or `batch approve` rerun by a login of
  the payouts group).
- {prefix}_analyst: reads `marts` only.

dbt replaces its tables and views on every build, so privileges on them are given per schema through default
privileges (`alter default privileges for role R in schema S`): they apply to objects created by the transformer
group or by any role that is a member of it when this runs. Rerunning changes nothing.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from .ddl import SCHEMAS

DEFAULT_PREFIX = "referral"
DBT_SCHEMAS = (
    "staging",
    "intermediate",
    "marts",
    "data_quality_failures",
)  # the last: failing rows of a test
ALL_SCHEMAS = (*SCHEMAS, *DBT_SCHEMAS)
GROUPS = ("loader", "transformer", "payouts", "finance", "analyst")
WHAT = {
    "loader": "writes raw (landing tables, rejected rows, load batches)",
    "transformer": "reads raw, rules, controls, payouts; writes rules; builds staging, intermediate, marts",
    "payouts": "reads marts, staging and its rules and controls; appends to payouts; publishes a batch",
    "finance": "inserts into controls (approvals, disputes, overrides, withdrawals, batch sign-off); reads "
    "controls, payouts, marts, staging",
    "analyst": "reads marts",
}


class RolesError(RuntimeError):
    """The roles cannot be created as asked; the message says why and what to do."""


def role_names(prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """Group name (loader, transformer, ...) -> role name, e.g. {'loader': 'referral_loader', ...}."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", prefix):
        raise RolesError(
            f"--prefix {prefix!r}: use lower-case letters, digits and _ (at most 41, not starting with a digit)"
        )
    return {g: f"{prefix}_{g}" for g in GROUPS}


def _ident(*names: str) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _grants(r: dict[str, str], database: str) -> list[sql.Composable]:
    """The GRANT statements on the schemas and the tables that exist now (all idempotent)."""
    loader, transformer, payouts, finance, analyst = (r[g] for g in GROUPS)
    q: list[sql.Composable] = []

    def add(template: str, *roles: str, **parts: sql.Composable) -> None:
        q.append(sql.SQL(template).format(roles=_ident(*roles), **parts))

    add("grant connect on database {db} to {roles}", *r.values(), db=sql.Identifier(database))
    # raw: the loader writes it, dbt reads it.
    add("grant usage on schema raw to {roles}", loader, transformer)
    add("grant select, insert, delete on all tables in schema raw to {roles}", loader)
    add("grant select on all tables in schema raw to {roles}", transformer)
    # rules: the rules step (run with dbt, as the transformer) replaces them; dbt and the payout step read them.
    add("grant usage on schema rules to {roles}", transformer, payouts)
    add("grant select, insert, delete on all tables in schema rules to {roles}", transformer)
    add("grant select on rules.program, rules.versions to {roles}", payouts)
    # controls: finance appends; dbt (overrides) and the payout step (approvals, disputes) read.
    add("grant usage on schema controls to {roles}", transformer, payouts, finance)
    add("grant select on all tables in schema controls to {roles}", transformer)
    add("grant select on controls.approvals, controls.disputes, controls.batch_decisions to {roles}", payouts)
    add("grant select, insert on all tables in schema controls to {roles}", finance)
    add("grant usage on all sequences in schema controls to {roles}", finance)
    # payouts: the ledger. Append-only (its triggers refuse UPDATE and DELETE); the payout step inserts and sets a
    # recorded batch's status to published; dbt's ledger views and finance read it.
    add("grant usage on schema payouts to {roles}", transformer, payouts, finance)
    add("grant select on all tables in schema payouts to {roles}", transformer, finance)
    add("grant select, insert on all tables in schema payouts to {roles}", payouts)
    add("grant update (status, published_at) on payouts.batches to {roles}", payouts)
    # dbt schemas: the transformer builds them; readers get the tables through default privileges (below).
    add(
        "grant usage, create on schema staging, intermediate, marts, data_quality_failures to {roles}",
        transformer,
    )
    add("grant usage on schema staging to {roles}", payouts, finance)
    add("grant usage on schema marts to {roles}", payouts, finance, analyst)
    add("grant select on all tables in schema staging to {roles}", payouts, finance)
    add("grant select on all tables in schema marts to {roles}", payouts, finance, analyst)
    return q


def _default_privileges(r: dict[str, str], creators: list[str]) -> list[sql.Composable]:
    """Privileges on tables created later: by the current role in the Python-owned schemas (a later version's
    tables), by the transformer group and its members in the dbt schemas."""
    loader, transformer, payouts, finance, analyst = (r[g] for g in GROUPS)
    q: list[sql.Composable] = []
    owner = [
        ("raw", "select, insert, delete", "tables", (loader,)),
        ("raw", "select", "tables", (transformer,)),
        ("rules", "select, insert, delete", "tables", (transformer,)),
        ("controls", "select", "tables", (transformer,)),
        ("controls", "select, insert", "tables", (finance,)),
        ("controls", "usage", "sequences", (finance,)),
        ("payouts", "select", "tables", (transformer, finance)),
        ("payouts", "select, insert", "tables", (payouts,)),
    ]
    for schema, privileges, kind, roles in owner:
        q.append(
            sql.SQL("alter default privileges in schema {} grant {} on {} to {}").format(
                sql.Identifier(schema), sql.SQL(privileges), sql.SQL(kind), _ident(*roles)
            )
        )
    for creator in creators:
        for schema, roles in (("staging", (payouts, finance)), ("marts", (payouts, finance, analyst))):
            q.append(
                sql.SQL(
                    "alter default privileges for role {} in schema {} grant select on tables to {}"
                ).format(sql.Identifier(creator), sql.Identifier(schema), _ident(*roles))
            )
    return q


def _creators(conn: psycopg.Connection, transformer: str) -> list[str]:
    """The transformer group and every role that is (directly or not) a member of it: whoever of them runs dbt
    or the data-driven step creates the tables the default privileges must cover."""
    rows = conn.execute(
        """
        with recursive members(oid) as (
          select oid from pg_roles where rolname = %s
          union
          select m.member from pg_auth_members m join members on m.roleid = members.oid
        )
        select r.rolname from members join pg_roles r using (oid)
        order by r.rolname = %s desc, r.rolname
        """,
        (transformer, transformer),
    ).fetchall()
    return [name for (name,) in rows]


def _give_dbt_objects_to_transformer(
    conn: psycopg.Connection, transformer: str, creators: list[str]
) -> list[str]:
    """Relations in the dbt schemas owned by a role outside the transformer group (e.g. built before the roles
    existed) go to the transformer group, so that its members can replace them. Returns their names."""
    kinds = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "S": "sequence"}
    rows = conn.execute(
        "select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_roles o on o.oid = c.relowner "
        "where n.nspname = any(%s) and c.relkind = any(%s) and not (o.rolname = any(%s)) "
        "and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i')) "
        "order by 1, 2",
        (list(DBT_SCHEMAS), list(kinds), creators),
    ).fetchall()
    for schema, name, kind in rows:
        conn.execute(
            sql.SQL("alter {} {} owner to {}").format(
                sql.SQL(kinds[kind]), sql.Identifier(schema, name), sql.Identifier(transformer)
            )
        )
    return [f"{s}.{n}" for s, n, _ in rows]


def privilege_state(conn: psycopg.Connection, prefix: str = DEFAULT_PREFIX) -> list[tuple]:
    """Everything `create_roles` sets, as sorted rows: the group roles, schema and relation owners and ACLs,
    column ACLs and default ACLs of the pipeline's schemas, and the database ACL."""
    names = list(role_names(prefix).values())
    rows = conn.execute(
        """
        select 'role', rolname, rolcanlogin::text, rolinherit::text from pg_roles where rolname = any(%(names)s)
        union all
        select 'database', datname, datacl::text, '' from pg_database where datname = current_database()
        union all
        select 'schema', nspname, nspowner::regrole::text, nspacl::text from pg_namespace
        where nspname = any(%(schemas)s)
        union all
        select 'relation', n.nspname || '.' || c.relname, c.relowner::regrole::text, c.relacl::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = any(%(schemas)s)
        union all
        select 'column', n.nspname || '.' || c.relname || '.' || a.attname, '', a.attacl::text
        from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s) and a.attacl is not null
        union all
        select 'default', coalesce(n.nspname, ''), d.defaclrole::regrole::text || ' ' || d.defaclobjtype::text,
               d.defaclacl::text
        from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace
        """,
        {"names": names, "schemas": list(ALL_SCHEMAS)},
    ).fetchall()
    return sorted(rows)


def create_roles(conn: psycopg.Connection, prefix: str = DEFAULT_PREFIX) -> str:
    """Create the group roles (NOLOGIN) and give each its privileges, in one transaction; idempotent. Run it as a
    superuser (or a role with CREATEROLE that owns the pipeline's schemas and tables), after `ensure_schema`.
    Returns the report printed by `referral-pipeline warehouse roles`."""
    r = role_names(prefix)
    with conn.transaction():
        before = privilege_state(conn, prefix)
        existing = {
            name: can_login
            for name, can_login in conn.execute(
                "select rolname, rolcanlogin from pg_roles where rolname = any(%s)", (list(r.values()),)
            )
        }
        lines = []
        for group, name in r.items():
            if existing.get(name):
                raise RolesError(
                    f"role {name} exists and can log in: it is not one of the pipeline's group roles; "
                    "choose another --prefix or drop that role"
                )
            if name not in existing:
                conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("comment on role {} is {}").format(
                    sql.Identifier(name), sql.Literal(f"referral-pipeline: {WHAT[group]}")
                )
            )
            lines.append((name, "exists" if name in existing else "created", WHAT[group]))
        for schema in DBT_SCHEMAS:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        database = conn.execute("select current_database()").fetchone()[0]
        for statement in _grants(r, database):
            conn.execute(statement)
        creators = _creators(conn, r["transformer"])
        given = _give_dbt_objects_to_transformer(conn, r["transformer"], creators)
        for statement in _default_privileges(r, creators):
            conn.execute(statement)
        changed = privilege_state(conn, prefix) != before
    width = max(len(n) for n in r.values())
    out = [f"least-privilege group roles in database {database}:"]
    out += [f"  {name.ljust(width)}  {state:<7}  {what}" for name, state, what in lines]
    out.append(f"tables dbt creates later are covered when created by: {', '.join(creators)}")
    if given:
        out.append(f"given to {r['transformer']} (built by another role before): {len(given)} relation(s)")
    out.append("privileges: " + ("updated" if changed else "unchanged (nothing to do)"))
    out.append(f"next: grant a group to a LOGIN role, e.g. `grant {r['analyst']} to alice;`")
    return "\n".join(out)
