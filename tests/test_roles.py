"""Least-privilege warehouse roles (`referral-pipeline warehouse roles`): connect as a LOGIN member of each group
role and show what it can and cannot do. Roles are cluster-wide, so every name carries a random token of this
test session and everything is dropped at the end."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from conftest import _as_url
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from referral_pipeline.cli import main
from referral_pipeline.warehouse import SchemaNotReady, ensure_schema

GROUPS = ("loader", "transformer", "payouts", "finance", "analyst")
DENIED = psycopg.errors.InsufficientPrivilege


def _catalog_state(conn: psycopg.Connection, prefix: str) -> list[tuple]:
    """Roles, owners and every ACL of the pipeline's schemas, as this test reads them from the catalogs."""
    return sorted(
        conn.execute(
            """
            select 'role', rolname, rolcanlogin::text from pg_roles where rolname like %(like)s
            union all
            select 'schema', nspname || ' ' || nspowner::regrole::text, coalesce(nspacl::text, '') from pg_namespace
            union all
            select 'rel', n.nspname || '.' || c.relname || ' ' || c.relowner::regrole::text,
                   coalesce(c.relacl::text, '')
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
            union all
            select 'col', a.attrelid::regclass::text || '.' || a.attname, a.attacl::text
            from pg_attribute a where a.attacl is not null
            union all
            select 'default', d.defaclrole::regrole::text || ' ' || d.defaclnamespace::text
                   || ' ' || d.defaclobjtype::text, d.defaclacl::text from pg_default_acl d
            union all
            select 'db', datname, coalesce(datacl::text, '') from pg_database where datname = current_database()
            """,
            {"like": f"{prefix}%"},
        ).fetchall()
    )


def _roles_command(url: str, prefix: str, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.setenv("REFERRAL_WAREHOUSE_URL", url)
    code = main(["warehouse", "roles", "--prefix", prefix])
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def roles(new_database) -> Iterator[dict]:
    """A warehouse with the group roles of a random prefix, one LOGIN role per group (with its group granted,
    then `warehouse roles` rerun so that the transformer's login is covered by the default privileges), a
    staging and a marts table and a view over the ledger built by the transformer's login, and one recorded
    batch with a ledger line written by the payouts login."""
    url = new_database("roles")
    ensure_schema(url)
    prefix = f"rt_{secrets.token_hex(4)}"
    users = {g: f"{prefix}_u_{g}" for g in GROUPS}
    params = conninfo_to_dict(url)
    urls = {}
    for g, user in users.items():
        urls[g] = _as_url({**params, "user": user, "password": f"pw{secrets.token_hex(8)}"})
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("REFERRAL_WAREHOUSE_URL", url)
        assert main(["warehouse", "roles", "--prefix", prefix]) == 0
        with psycopg.connect(url, autocommit=True) as admin:
            for g, user in users.items():
                password = conninfo_to_dict(urls[g])["password"]
                admin.execute(
                    sql.SQL("create role {} login password {} in role {}").format(
                        sql.Identifier(user), sql.Literal(password), sql.Identifier(f"{prefix}_{g}")
                    )
                )
        assert main(["warehouse", "roles", "--prefix", prefix]) == 0
        with psycopg.connect(urls["transformer"], autocommit=True) as t:
            t.execute("create table staging.stg_crm__partners as select 'PTR-1'::text as partner_id")
            t.execute(
                "create table marts.fct_reward_entitlements as "
                "select 'EV-1'::text as event_id, 'PTR-1'::text as partner_id, 100.00::numeric as amount"
            )
            t.execute(
                "create view marts.fct_reward_events as "
                "select event_id, partner_id, amount from payouts.ledger_lines"
            )
        with psycopg.connect(urls["payouts"], autocommit=True) as p:
            p.execute(
                "insert into payouts.batches (batch_id, period, cutoff, run_date, created_at, rules_version, "
                "rules_sha256, code_version, program_currency, minimum_payout, program_amount, line_count, "
                "partner_count, review_count, deferred_count, status) values ('B-2025-01', '2025-01', "
                "'2025-01-31 23:59:59+00', '2025-02-01', now(), '2025-01-01', 'x', 'test', 'EUR', 50, 100.00, "
                "1, 1, 0, 0, 'recorded')"
            )
            p.execute(
                "insert into payouts.ledger_lines (batch_id, event_id, event_type, partner_id, earned_at, "
                "payable_at, entitlement, previously_paid, amount) values ('B-2025-01', 'EV-1', "
                "'referral_bonus', 'PTR-1', '2025-01-10', '2025-01-20', 100.00, 0, 100.00)"
            )
        yield {"url": url, "prefix": prefix, "urls": urls, "users": users}
    finally:
        mp.undo()
        with psycopg.connect(url, autocommit=True) as admin:
            names = [
                n
                for (n,) in admin.execute(
                    "select rolname from pg_roles where rolname like %s order by rolname desc",
                    (f"{prefix}%",),
                )
            ]
            for name in names:  # one at a time: several at once can trip over a shared default ACL
                admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
            for name in names:
                admin.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def _denied(url: str, statement: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement)
        except DENIED:
            return True
    return False


def _one(url: str, statement: str) -> tuple:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement).fetchone()


def test_group_roles_are_nologin_and_a_rerun_changes_nothing(roles, capsys, monkeypatch):
    with psycopg.connect(roles["url"]) as admin:
        groups = admin.execute(
            "select rolname, rolcanlogin from pg_roles where rolname = any(%s) order by rolname",
            ([f"{roles['prefix']}_{g}" for g in GROUPS],),
        ).fetchall()
        assert sorted(groups) == sorted((f"{roles['prefix']}_{g}", False) for g in GROUPS)
        before = _catalog_state(admin, roles["prefix"])
    code, out = _roles_command(roles["url"], roles["prefix"], capsys, monkeypatch)
    assert code == 0
    assert "privileges: unchanged" in out
    assert out.count(" exists ") == len(GROUPS) and " created  " not in out
    assert (
        f"{roles['prefix']}_u_transformer" in out
    )  # its login's tables are covered by the default privileges
    with psycopg.connect(roles["url"]) as admin:
        assert _catalog_state(admin, roles["prefix"]) == before


def test_analyst_reads_marts_only(roles):
    analyst = roles["urls"]["analyst"]
    assert _one(analyst, "select partner_id, amount from marts.fct_reward_entitlements") == ("PTR-1", 100)
    # A view over the ledger runs with its owner's (the transformer's) rights: the analyst reads it.
    assert _one(analyst, "select event_id, amount from marts.fct_reward_events") == ("EV-1", 100)
    assert _denied(analyst, "select * from payouts.ledger_lines")
    assert _denied(analyst, "select * from raw.crm__deals")
    assert _denied(analyst, "select * from raw.rejected_rows")
    assert _denied(analyst, "select * from staging.stg_crm__partners")
    assert _denied(analyst, "select * from controls.approvals")
    assert _denied(
        analyst, "insert into controls.approvals (event_id, created_by, reason) values ('EV-1', 'a', 'b')"
    )
    assert _denied(analyst, "delete from marts.fct_reward_entitlements")
    assert _denied(analyst, "create table marts.mine (x int)")


def test_finance_inserts_controls_and_the_rows_carry_the_session_user(roles):
    finance, user = roles["urls"]["finance"], roles["users"]["finance"]
    with psycopg.connect(finance, autocommit=True) as conn:
        rows = [
            conn.execute(
                "insert into controls.approvals (event_id, created_by, reason) values ('EV-1', 'Ana', 'ok') "
                "returning created_by, session_user_name"
            ).fetchone(),
            conn.execute(
                "insert into controls.disputes (subject_type, subject_id, action, created_by, reason) "
                "values ('deal', 'D-1', 'open', 'Ana', 'partner asks') returning created_by, session_user_name"
            ).fetchone(),
            conn.execute(
                "insert into controls.attribution_overrides (override_set_id, deal_id, partner_id, credit, "
                "created_by, reason) values (nextval('controls.attribution_override_set_seq'), 'D-1', 'PTR-1', 1, "
                "'Ana', 'contract') returning created_by, session_user_name"
            ).fetchone(),
            conn.execute(
                "insert into controls.attribution_override_withdrawals (deal_id, created_by, reason) "
                "values ('D-1', 'Ana', 'mistake') returning created_by, session_user_name"
            ).fetchone(),
        ]
        assert rows == [("Ana", user)] * 4
        # It reads what the control commands check: the marts, the deals and partners, the ledger.
        assert conn.execute("select count(*) from marts.fct_reward_events").fetchone() == (1,)
        assert conn.execute("select count(*) from staging.stg_crm__partners").fetchone() == (1,)
        assert conn.execute("select count(*) from payouts.ledger_lines").fetchone() == (1,)
    for table in ("approvals", "disputes", "attribution_overrides", "attribution_override_withdrawals"):
        assert _denied(finance, f"update controls.{table} set reason = 'changed'")
        assert _denied(finance, f"delete from controls.{table}")
        assert _denied(finance, f"truncate controls.{table}")
    assert _denied(finance, "update payouts.batches set status = 'published', published_at = now()")
    assert _denied(
        finance,
        "insert into payouts.deferred_partners (batch_id, partner_id, line_count, balance) "
        "values ('B-2025-01', 'PTR-9', 1, 10)",
    )
    assert _denied(finance, "select * from raw.crm__deals")
    assert _denied(finance, "delete from rules.free_mail_domains")


def test_nobody_updates_or_deletes_ledger_lines(roles):
    for group, url in roles["urls"].items():
        for table in ("ledger_lines", "review_lines", "deferred_partners", "partner_payouts"):
            assert _denied(url, f"update payouts.{table} set partner_id = 'PTR-2'"), (group, table)
            assert _denied(url, f"delete from payouts.{table}"), (group, table)
            assert _denied(url, f"truncate payouts.{table}"), (group, table)
        assert _denied(url, "delete from payouts.batches"), group
        assert _denied(url, "update payouts.batches set program_amount = 0"), group
    # Even the owner cannot: the ledger's triggers refuse it.
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        _one(roles["url"], "update payouts.ledger_lines set amount = 0")


def test_payouts_reads_its_inputs_appends_and_publishes_only(roles):
    payouts = roles["urls"]["payouts"]
    assert _one(payouts, "select amount from marts.fct_reward_entitlements") == (100,)
    assert _one(payouts, "select partner_id from staging.stg_crm__partners") == ("PTR-1",)
    assert _one(payouts, "select count(*) from controls.approvals")[0] >= 0
    assert _one(payouts, "select count(*) from rules.versions") == (0,)
    with psycopg.connect(payouts) as conn:  # publishing: one transaction, rolled back
        conn.execute("update payouts.batches set status = 'published', published_at = now()")
        assert conn.execute("select status from payouts.batches").fetchone() == ("published",)
        conn.rollback()
    assert _denied(
        payouts, "insert into controls.approvals (event_id, created_by, reason) values ('E', 'a', 'b')"
    )
    assert _denied(payouts, "select * from raw.crm__deals")
    assert _denied(payouts, "select * from controls.attribution_overrides")
    assert _denied(payouts, "delete from marts.fct_reward_entitlements")
    assert _denied(payouts, "create table marts.mine (x int)")


def test_loader_writes_raw_only(roles):
    loader = roles["urls"]["loader"]
    with psycopg.connect(loader, autocommit=True) as conn:
        conn.execute(
            "insert into raw.rejected_rows values ('crm/deals', '2025-01-02', 'f.csv', 2, 'x', 'bad', 'L1', now())"
        )
        assert conn.execute("delete from raw.rejected_rows where _load_batch_id = 'L1'").rowcount == 1
    assert _denied(loader, "insert into marts.fct_reward_entitlements values ('EV-2', 'PTR-1', 1)")
    assert _denied(loader, "create table marts.mine (x int)")
    assert _denied(loader, "select * from marts.fct_reward_entitlements")
    assert _denied(loader, "select * from controls.approvals")
    assert _denied(loader, "select * from payouts.batches")
    assert _denied(loader, "delete from rules.free_mail_domains")


def test_transformer_builds_dbt_schemas_and_rules_but_writes_no_source(roles):
    transformer = roles["urls"]["transformer"]
    with psycopg.connect(transformer, autocommit=True) as conn:
        conn.execute("create table intermediate.int_x as select 1 as x")
        conn.execute("alter table intermediate.int_x rename to int_x__dbt_backup")
        conn.execute("drop table intermediate.int_x__dbt_backup")
        conn.execute("insert into rules.free_mail_domains values ('example.org')")
        assert conn.execute("delete from rules.free_mail_domains").rowcount == 1
        for relation in ("raw.crm__deals", "controls.attribution_overrides", "payouts.ledger_lines"):
            conn.execute(f"select count(*) from {relation}")
    assert _denied(transformer, "delete from raw.rejected_rows")
    assert _denied(
        transformer, "insert into controls.approvals (event_id, created_by, reason) values ('E', 'a', 'b')"
    )
    assert _denied(
        transformer,
        "insert into payouts.deferred_partners (batch_id, partner_id, line_count, balance) "
        "values ('B-2025-01', 'PTR-9', 1, 10)",
    )
    assert _denied(transformer, "create schema elsewhere")


def test_restricted_roles_check_the_schema_and_the_owner_upgrades_it(roles):
    # A least-privilege role changes nothing on start: the schema is complete, so it goes on.
    for url in roles["urls"].values():
        ensure_schema(url)
    with psycopg.connect(roles["url"], autocommit=True) as admin:
        # A warehouse from before the column: a control table without it, with a row.
        admin.execute("alter table controls.disputes drop column session_user_name")
        admin.execute(
            "insert into controls.disputes (subject_type, subject_id, action, created_by, reason) "
            "values ('deal', 'D-9', 'open', 'Old', 'before the upgrade')"
        )
    with pytest.raises(SchemaNotReady, match=r"controls\.disputes\.session_user_name"):
        ensure_schema(roles["urls"]["finance"])
    ensure_schema(roles["url"])  # the owner upgrades it
    ensure_schema(roles["urls"]["finance"])
    with psycopg.connect(roles["urls"]["finance"], autocommit=True) as conn:
        conn.execute(
            "insert into controls.disputes (subject_type, subject_id, action, created_by, reason) "
            "values ('deal', 'D-9', 'resolve', 'Ana', 'after the upgrade')"
        )
        rows = conn.execute(
            "select created_by, session_user_name from controls.disputes where subject_id = 'D-9' "
            "order by dispute_action_id"
        ).fetchall()
    assert rows == [("Old", ""), ("Ana", roles["users"]["finance"])]


def test_roles_refused_to_a_restricted_login_and_a_bad_prefix_in_one_line(roles, capsys, monkeypatch):
    monkeypatch.setenv("REFERRAL_WAREHOUSE_URL", roles["urls"]["analyst"])
    assert main(["warehouse", "roles", "--prefix", roles["prefix"]]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: warehouse roles: ") and "superuser" in err and "\n" not in err
    monkeypatch.setenv("REFERRAL_WAREHOUSE_URL", roles["url"])
    assert main(["warehouse", "roles", "--prefix", "Bad-Prefix"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --prefix 'Bad-Prefix': ") and "\n" not in err


def test_the_payout_setup_and_the_control_commands_work_under_their_roles(roles):
    """The steps that used to need more than their role: the ledger's setup as the payouts login (no schema may
    be created, even `if not exists`), and `approve` / `dispute` / `override withdraw` as finance (they
    serialise with advisory locks, not `lock table`, which needs UPDATE or DELETE on the table)."""
    from payout_exports.ledger import ensure_ledger_schema
    from referral_pipeline.controls import ControlError, approve, dispute, withdraw_override

    with psycopg.connect(roles["urls"]["transformer"], autocommit=True) as t:
        t.execute(
            "create table if not exists staging.stg_crm__referrals as select 'R-1'::text as referral_id"
        )
        t.execute("insert into marts.fct_reward_entitlements values ('EV-2', 'PTR-1', 50.00)")
    with psycopg.connect(roles["urls"]["payouts"]) as conn:
        ensure_ledger_schema(conn)  # the ledger exists: nothing to create, nothing refused
    with psycopg.connect(roles["urls"]["finance"]) as conn:
        approval = approve(conn, "EV-2", by="Ana Ruiz", reason="tax form received by mail")
        assert approval > 0
        dispute(
            conn, "open", deal_id=None, referral_id="R-1", by="Ana Ruiz", reason="customer says otherwise"
        )
        with pytest.raises(ControlError, match="no attribution override in force"):
            withdraw_override(conn, "D-1", by="Ana Ruiz", reason="wrong deal")
    with psycopg.connect(roles["url"]) as admin:
        assert admin.execute(
            "select created_by, session_user_name from controls.approvals where approval_id = %s", (approval,)
        ).fetchone() == ("Ana Ruiz", roles["users"]["finance"])


def test_batch_sign_off_under_the_roles(roles, tmp_path):
    """Sign-off (batch_approval: required): finance approves or rejects with one row in controls and cannot
    publish; the payouts login cannot publish a batch awaiting approval, and publishes it once approved."""
    import payout_exports
    from payout_exports.ledger import decide_batch
    from payout_exports.publish import approve_batch, batch_text

    finance, payouts, user = roles["urls"]["finance"], roles["urls"]["payouts"], roles["users"]["finance"]
    with psycopg.connect(payouts, autocommit=True) as p:
        for period in ("2025-02", "2025-03"):
            p.execute(
                "insert into payouts.batches (batch_id, period, cutoff, run_date, created_at, rules_version, "
                "rules_sha256, code_version, program_currency, minimum_payout, program_amount, line_count, "
                "partner_count, review_count, deferred_count, status) values (%s, %s, "
                "'2025-02-28 23:59:59+00', '2025-03-01', now(), '2025-01-01', 'x', 'test', 'EUR', 50, 0, "
                "0, 0, 0, 0, 'awaiting_approval')",
                (f"B-{period}", period),
            )
    with pytest.raises(psycopg.errors.RaiseException, match="awaits approval"):
        _one(payouts, "update payouts.batches set status = 'published' where batch_id = 'B-2025-02'")
    exports = tmp_path / "exports"
    with psycopg.connect(finance) as conn:
        assert "AWAITING APPROVAL" in batch_text(conn, str(exports), "2025-02")
        decision = approve_batch(conn, str(exports), "2025-02", by="Ana Ruiz", reason="totals checked")
        assert decision.recorded and decision.files_written is None  # finance may not publish
        decide_batch(conn, "2025-03", "reject", by="Ana Ruiz", reason="wrong cutoff")
    assert not exports.exists()
    with psycopg.connect(roles["url"]) as admin:
        assert admin.execute(
            "select batch_id, decision, created_by, session_user_name from controls.batch_decisions "
            "order by decision_id"
        ).fetchall() == [
            ("B-2025-02", "approve", "Ana Ruiz", user),
            ("B-2025-03", "reject", "Ana Ruiz", user),
        ]
    assert _denied(finance, "update controls.batch_decisions set reason = 'changed'")
    assert _denied(finance, "delete from controls.batch_decisions")
    assert _denied(finance, "update payouts.batches set status = 'published', published_at = now()")
    assert _denied(roles["urls"]["analyst"], "select * from controls.batch_decisions")
    assert _denied(
        payouts,
        "insert into controls.batch_decisions (batch_id, period, decision, created_by, reason) "
        "values ('B-2025-03', '2025-03', 'approve', 'a', 'b')",
    )
    # The payouts step publishes the approved batch, and only that one (the rejected one is void).
    assert payout_exports.publish_recorded_batches(payouts, str(exports), log=lambda _: None) == [
        "B-2025-01",
        "B-2025-02",
    ]
    assert (exports / "period=2025-02" / "manifest.json").exists()
    assert not (exports / "period=2025-03").exists()
