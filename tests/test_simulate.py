"""`referral-pipeline simulate` on the golden example (the session's golden nightly): the current rules give a
zero delta everywhere; the registered tier's commission rate doubled doubles exactly that tier's commission
events (each the doubled exact amount, rounded once) and changes nothing else; the warehouse (every table of
every non-scratch schema, ordered contents), the export folder and the pipeline's dbt folder are
byte-identical before and after; scratch schemas are gone after a success, a dbt failure and an interrupt,
and a killed simulation's leftovers are removed by the next one; refusals are one line; the HTML page renders
in headless Chromium. Pure helpers are unit-tested at the top."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
import pytest
from browser import browser_page

from referral_pipeline import simulate as sim
from referral_pipeline.cli import main

from golden import scoped_env

WINDOW = ("2025-01", "2025-04")
CENT = Decimal("0.01")
STALE = "sim_20200101000000_abcdef_"


# --- pure helpers ---------------------------------------------------------------------------------------------------


def test_month_range_is_inclusive_and_refuses_from_after_to():
    assert sim.month_range(dt.date(2024, 11, 1), dt.date(2025, 2, 1)) == [
        dt.date(2024, 11, 1),
        dt.date(2024, 12, 1),
        dt.date(2025, 1, 1),
        dt.date(2025, 2, 1),
    ]
    assert sim.month_range(dt.date(2025, 3, 1), dt.date(2025, 3, 1)) == [dt.date(2025, 3, 1)]
    with pytest.raises(sim.SimulationError, match=r"--from 2025-04 is after --to 2025-03"):
        sim.month_range(dt.date(2025, 4, 1), dt.date(2025, 3, 1))
    with pytest.raises(ValueError, match="YYYY-MM"):
        sim.parse_month("2025-13")


def test_scratch_prefix_names_and_the_pattern_that_finds_them():
    now = dt.datetime(2026, 11, 29, 9, 5, 7, tzinfo=dt.UTC)
    prefix = sim.scratch_prefix(now, "0a1b2c")
    assert prefix == "sim_20261129090507_0a1b2c_"
    assert sim.SCRATCH_RE.match(f"{prefix}intermediate").group(1) == prefix
    assert sim.simulation_id(prefix) == "20261129090507_0a1b2c"
    assert len(f"{prefix}intermediate") < 63
    assert sim.SCRATCH_RE.match("simple_schema") is None
    with pytest.raises(ValueError):
        sim.scratch_prefix(now, "XYZ")


def test_dbt_arguments_and_environment():
    args = sim.dbt_run_args(Path("/p"))
    assert args == [
        "--no-use-colors",
        "run",
        "--select",
        "+fct_reward_entitlements",
        "+fct_attribution",
        "+int_tiers__partner_months",
        "--project-dir",
        "/p",
        "--profiles-dir",
        "/p",
    ]
    assert sim.scratch_env("sim_x_") == {
        "REFERRAL_DBT_SCHEMA_PREFIX": "sim_x_",
        "REFERRAL_DBT_RULES_SCHEMA": "sim_x_rules",
    }


def test_progress_lines_of_dbt():
    line = "09:12:01  3 of 37 OK created sql view model sim_x_staging.stg_a ......... [CREATE VIEW in 0.05s]"
    assert sim.parse_progress(line)[:3] == (3, 37, "OK")
    assert sim.parse_progress("09:12:01  4 of 37 START sql table model x.y")[2] == "START"
    assert sim.parse_progress("09:12:01  5 of 37 ERROR creating sql table model x.y")[2] == "ERROR"
    assert sim.parse_progress("09:12:01  Found 37 models, 1 of which is new") is None


def test_the_failure_detail_is_the_first_failed_model_and_its_database_message():
    lines = [
        "09:18:07  Completed with 2 errors, 0 partial successes, and 0 warnings:",
        "09:18:07  Failure in model stg_rules__tiers (models/staging/stg_rules__tiers.sql)",
        "09:18:07    Database Error in model stg_rules__tiers (models/staging/stg_rules__tiers.sql)",
        '  relation "sim_x_rules.tiers" does not exist',
        "  LINE 9: ...",
    ]
    assert sim.failure_detail(lines) == 'model stg_rules__tiers: relation "sim_x_rules.tiers" does not exist'
    assert sim.failure_detail(["09:18:07  Done. PASS=3"]) is None


def test_the_rules_loader_is_redirected_to_the_scratch_schema_only():
    assert sim.redirect_schema("delete from rules.tiers", "sim_x_rules") == "delete from sim_x_rules.tiers"
    assert (
        sim.redirect_schema("copy rules.free_mail_domains (domain) from stdin", "s")
        == "copy s.free_mail_domains (domain) from stdin"
    )
    assert sim.redirect_schema("select my_rules.x from t", "s") == "select my_rules.x from t"


# --- the golden example ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden(golden_nightly, new_database) -> dict:
    """The golden example's warehouse as the nightly runs left it, in a copy of its own: other tests of the
    session add control rows (an override counts on the proposed side only: no zero delta) to the shared one."""
    url = new_database("golden_sim", copy_of=golden_nightly["pristine_url"])
    return {**golden_nightly, "url": url, "env": {**golden_nightly["env"], "REFERRAL_WAREHOUSE_URL": url}}


@pytest.fixture(scope="module")
def env(golden) -> dict[str, str]:
    """The golden nightly's settings, with its data folder (where the pipeline's dbt folder is)."""
    return {
        **golden["env"],
        "REFERRAL_DATA_DIR": os.environ["REFERRAL_DATA_DIR"],
        "REFERRAL_IP_HASH_KEY": os.environ["REFERRAL_IP_HASH_KEY"],
    }


def fingerprint(url: str, exports: Path, dbt_dir: Path) -> dict[str, str]:
    """Every table and view of every non-scratch schema (definition and ordered contents), every file under
    the export folder and under the pipeline's dbt folder."""
    out: dict[str, str] = {}
    with psycopg.connect(url) as conn:
        relations = conn.execute(
            """
            select n.nspname, c.relname, c.relkind
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'v', 'm')
              and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%%'
              and n.nspname !~ '^sim_[0-9]{14}_'
            order by 1, 2
            """
        ).fetchall()
        assert len(relations) > 30
        for schema, name, kind in relations:
            columns = conn.execute(
                "select string_agg(column_name || ' ' || data_type, ', ' order by ordinal_position) "
                "from information_schema.columns where table_schema = %s and table_name = %s",
                (schema, name),
            ).fetchone()[0]
            if kind == "v":
                body = conn.execute(
                    "select pg_get_viewdef(%s::regclass)", (f'"{schema}"."{name}"',)
                ).fetchone()[0]
            else:
                body = conn.execute(
                    f"select count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' order by t::text)), '') "
                    f'from "{schema}"."{name}" as t'
                ).fetchone()[0]
            out[f"db:{schema}.{name}"] = f"{columns} | {body}"
    for root, label in ((exports, "exports"), (dbt_dir, "dbt")):
        files = sorted(p for p in root.rglob("*") if p.is_file())
        if label == "exports":
            assert files, "the golden run published files"
        for p in files:
            out[f"{label}:{p.relative_to(root)}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def scratch_left(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "select nspname from pg_namespace where nspname ~ '^sim_[0-9]{14}_' order by 1"
            ).fetchall()
        ]


def simulate(env: dict[str, str], *args: str) -> int:
    with scoped_env(env):
        return main(["simulate", *args])


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def doubled_rules(golden, tmp_path_factory) -> Path:
    """The golden rules with the registered tier's commission rate doubled (0.10 -> 0.20), nothing else."""
    text = (golden["golden"] / "program_rules.yml").read_text(encoding="utf-8")
    old = "{name: registered, min_trailing_revenue: 0,      commission_rate: 0.10,"
    assert text.count(old) == 1
    path = tmp_path_factory.mktemp("proposed") / "proposed.yml"
    path.write_text(text.replace(old, old.replace("0.10", "0.20")), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(env, golden, doubled_rules, tmp_path_factory) -> dict:
    """A stale scratch schema of a killed simulation, then: the current rules twice (default folder, then
    --out), the doubled rate once; fingerprints before and after."""
    url = golden["url"]
    dbt_dir = Path(env["REFERRAL_DATA_DIR"]) / "dbt" / "target"
    assert (dbt_dir / "manifest.json").is_file()  # the golden nightly's dbt folder
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'create schema "{STALE}rules"')
        conn.execute(f'create table "{STALE}rules".leftover (x int)')
    before = fingerprint(url, golden["exports"], dbt_dir)
    rules = str(golden["golden"] / "program_rules.yml")
    again = tmp_path_factory.mktemp("same-again")
    doubled = tmp_path_factory.mktemp("doubled")
    codes = [
        simulate(env, "--rules", rules, "--from", WINDOW[0], "--to", WINDOW[1]),
        simulate(env, "--rules", rules, "--from", WINDOW[0], "--to", WINDOW[1], "--out", str(again)),
        simulate(
            env, "--rules", str(doubled_rules), "--from", WINDOW[0], "--to", WINDOW[1], "--out", str(doubled)
        ),
    ]
    after = fingerprint(url, golden["exports"], dbt_dir)
    default = sorted((Path(env["REFERRAL_DATA_DIR"]) / "simulations").iterdir())
    return {
        "codes": codes,
        "before": before,
        "after": after,
        "same": default[0] if default else None,
        "defaults": default,
        "again": again,
        "doubled": doubled,
        "url": url,
        "dbt_simulations": sorted((Path(env["REFERRAL_DATA_DIR"]) / "dbt" / "simulations").glob("*")),
    }


def _entitlements(url: str) -> dict[str, dict]:
    """marts.fct_reward_entitlements read by the test itself."""
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "select event_id, event_type, partner_id, tier, amount, commission_base, commission_rate, "
            "payout_credit, commission_cap_per_deal, "
            "to_char(payable_at at time zone 'UTC', 'YYYY-MM') as month from marts.fct_reward_entitlements"
        )
        names = [c.name for c in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def test_every_run_succeeds_and_writes_its_files(runs):
    assert runs["codes"] == [0, 0, 0]
    assert len(runs["defaults"]) == 1  # one default-folder run: data folder's simulations/<id>/
    for folder in (runs["same"], runs["again"], runs["doubled"]):
        names = {p.name for p in folder.iterdir()}
        assert {
            "partner_months.csv",
            "programme.csv",
            "events.csv",
            "tier_changes.csv",
            "attribution_shift.csv",
            "attribution_models.csv",
            "simulation.html",
            "simulation.json",
            "summary.txt",
        } <= names


def test_the_warehouse_exports_and_dbt_folder_are_byte_identical_and_no_scratch_is_left(runs):
    assert runs["after"] == runs["before"]
    assert scratch_left(runs["url"]) == []  # the stale schema of a killed simulation was removed too
    assert runs["dbt_simulations"] == []  # the simulations' own dbt folders are removed after a success


def test_the_current_rules_give_zero_delta_everywhere(runs, golden):
    pm = read(runs["same"] / "partner_months.csv")
    assert pm and all(Decimal(r["delta"]) == 0 for r in pm)
    assert all(r["tier_now"] == r["tier_proposed"] and r["tier_changed"] == "false" for r in pm)
    assert all(Decimal(r["delta"]) == 0 for r in read(runs["same"] / "programme.csv"))
    events = read(runs["same"] / "events.csv")
    assert events and all(
        r["amount_now"] == r["amount_proposed"] and Decimal(r["delta"]) == 0 for r in events
    )
    assert read(runs["same"] / "tier_changes.csv") == []
    shift = read(runs["same"] / "attribution_shift.csv")
    assert {r["model"] for r in shift} >= {
        "payout",
        "first_touch",
        "last_touch",
        "linear",
        "time_decay",
        "position_based",
    }
    assert all(Decimal(r["delta"]) == 0 for r in shift)
    assert all(Decimal(r["shifted"]) == 0 for r in read(runs["same"] / "attribution_models.csv"))


def test_now_is_what_the_golden_example_pays_per_partner_and_month(runs, golden):
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with open(golden["golden"] / "expected_reward_events.csv", newline="", encoding="utf-8") as f:
        for e in csv.DictReader(f):
            if WINDOW[0] <= e["payable_at"][:7] <= WINDOW[1]:
                expected[(e["partner_id"], e["payable_at"][:7])] += Decimal(e["amount"])
    pm = read(runs["same"] / "partner_months.csv")
    got = {(r["partner_id"], r["month"]): Decimal(r["entitlement_now"]) for r in pm}
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
    total = [r for r in read(runs["same"] / "programme.csv") if r["month"] == "total"][0]
    assert Decimal(total["entitlement_now"]) == sum(expected.values())


def test_a_rerun_writes_the_same_bytes(runs):
    for name in (
        "partner_months.csv",
        "programme.csv",
        "events.csv",
        "attribution_shift.csv",
        "simulation.html",
        "summary.txt",
    ):
        assert (runs["same"] / name).read_bytes() == (runs["again"] / name).read_bytes(), name


def test_a_doubled_commission_rate_doubles_that_tiers_commission_events_and_nothing_else(runs):
    marts = _entitlements(runs["url"])
    events = {r["event_id"]: r for r in read(runs["doubled"] / "events.csv")}
    in_window = {k: v for k, v in marts.items() if WINDOW[0] <= v["month"] <= WINDOW[1]}
    assert set(events) == set(in_window)
    doubled = [e for e in in_window.values() if e["event_type"] == "commission" and e["tier"] == "registered"]
    assert len(doubled) >= 5
    exactly_twice = 0
    for e in in_window.values():
        r = events[e["event_id"]]
        assert Decimal(r["amount_now"]) == e["amount"]
        assert r["tier_now"] == r["tier_proposed"] == e["tier"]
        if e in doubled:
            assert Decimal(r["commission_rate_proposed"]) == 2 * e["commission_rate"]
            exact_now = e["commission_base"] * e["commission_rate"] * e["payout_credit"]
            assert e["commission_cap_per_deal"] is None  # the golden rules have no cap
            assert exact_now.quantize(CENT, ROUND_HALF_UP) == e["amount"]
            # In the report: twice the exact amount (base x rate x credit of each side, exact decimals) ...
            exact = {
                side: Decimal(r[f"commission_base_{side}"])
                * Decimal(r[f"commission_rate_{side}"])
                * Decimal(r[f"payout_credit_{side}"])
                for side in ("now", "proposed")
            }
            assert exact["now"] == exact_now and exact["proposed"] == 2 * exact_now, r
            # ... rounded once to the cent.
            assert Decimal(r["amount_proposed"]) == (2 * exact_now).quantize(CENT, ROUND_HALF_UP), r
            if exact_now == exact_now.quantize(CENT):
                assert Decimal(r["amount_proposed"]) == 2 * e["amount"], r
                exactly_twice += 1
        else:
            assert r["amount_proposed"] == r["amount_now"] and Decimal(r["delta"]) == 0, r
    assert exactly_twice >= 5
    # Per partner and month, and for the programme: the sum of those events' deltas.
    want: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in doubled:
        want[(e["partner_id"], e["month"])] += Decimal(events[e["event_id"]]["amount_proposed"]) - e["amount"]
    pm = read(runs["doubled"] / "partner_months.csv")
    assert {(r["partner_id"], r["month"]): Decimal(r["delta"]) for r in pm if Decimal(r["delta"])} == {
        k: v for k, v in want.items() if v
    }
    total = [r for r in read(runs["doubled"] / "programme.csv") if r["month"] == "total"][0]
    assert Decimal(total["delta"]) == sum(want.values()) > 0
    assert read(runs["doubled"] / "tier_changes.csv") == []
    assert all(Decimal(r["delta"]) == 0 for r in read(runs["doubled"] / "attribution_shift.csv"))


def test_the_summary_is_printed(env, golden, doubled_rules, tmp_path, capsys):
    assert (
        simulate(
            env, "--rules", str(doubled_rules), "--from", "2025-02", "--to", "2025-02", "--out", str(tmp_path)
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "dbt built" in out and "scratch schemas removed" in out
    assert "programme:" in out and "attribution shift" in out
    assert (tmp_path / "summary.txt").read_text(encoding="utf-8").strip() in out
    total = [r for r in read(tmp_path / "programme.csv") if r["month"] == "total"][0]
    assert f"+{Decimal(total['delta']):,}" in out


def test_the_html_page_renders_with_its_chart_and_totals(runs):
    total = [r for r in read(runs["doubled"] / "programme.csv") if r["month"] == "total"][0]
    with browser_page(runs["doubled"] / "simulation.html") as page:
        assert page.errors == []
        chart = page.locator("figure.chart svg")
        assert chart.count() == 1
        box = chart.first.bounding_box()
        assert box and box["width"] > 600 and box["height"] > 150
        text = page.locator("#total").inner_text()
        rows = page.locator("section#partners tbody tr").count()
    assert f"now {Decimal(total['entitlement_now']):,}" in text
    assert f"proposed {Decimal(total['entitlement_proposed']):,}" in text
    assert f"delta +{Decimal(total['delta']):,}" in text
    assert rows == len(read(runs["doubled"] / "partner_months.csv"))


# --- refusals and cleanup ----------------------------------------------------------------------------------------


def test_an_invalid_rules_file_is_refused_naming_file_and_field(env, golden, tmp_path, capsys):
    text = (golden["golden"] / "program_rules.yml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yml"
    bad.write_text(text.replace("commission_rate: 0.15", "commission_rate: 1.5"), encoding="utf-8")
    assert simulate(env, "--rules", str(bad), "--from", "2025-01", "--to", "2025-02") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(bad) in err and "tiers[1].commission_rate" in err and "1.5" in err


def test_from_after_to_is_refused(env, golden, capsys):
    rules = str(golden["golden"] / "program_rules.yml")
    assert simulate(env, "--rules", rules, "--from", "2025-03", "--to", "2025-01") == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: --from 2025-03 is after --to 2025-01: give the earlier month first"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rules", "r.yml", "--from", "2025-13", "--to", "2025-12"], "expected a month YYYY-MM"),
        (["--rules", "r.yml", "--from", "2025-01"], "--to"),
        (["--from", "2025-01", "--to", "2025-02"], "--rules"),
    ],
)
def test_usage_errors_exit_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *args])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_an_empty_warehouse_is_refused(warehouse_url, golden, tmp_path, capsys):
    env = {
        "REFERRAL_WAREHOUSE_URL": warehouse_url,
        "REFERRAL_DATA_DIR": str(tmp_path),
        "REFERRAL_IP_HASH_KEY": os.environ["REFERRAL_IP_HASH_KEY"],
    }
    rules = str(golden["golden"] / "program_rules.yml")
    assert simulate(env, "--rules", rules, "--from", "2025-01", "--to", "2025-02") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no nightly run has built this warehouse yet" in err and "referral-pipeline run" in err
    assert not (tmp_path / "simulations").exists()


def test_a_failed_dbt_build_drops_the_scratch_schemas(env, golden, monkeypatch, capsys):
    # The rules source pointed at a schema that does not exist: dbt fails on the first rules model.
    monkeypatch.setattr(
        sim, "scratch_env", lambda prefix: {sim.PREFIX_ENV: prefix, sim.RULES_SCHEMA_ENV: f"{prefix}missing"}
    )
    rules = str(golden["golden"] / "program_rules.yml")
    assert simulate(env, "--rules", rules, "--from", "2025-01", "--to", "2025-02") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (
        "dbt could not build the proposed rules' models (model stg_rules__" in err and "does not exist" in err
    )
    assert scratch_left(golden["url"]) == []
    log = Path(err.rsplit(" ", 1)[-1])
    assert log.name == "dbt-output.log" and "missing" in log.read_text(
        encoding="utf-8"
    )  # kept, as the line says


def test_an_interrupted_simulation_drops_its_scratch_schemas(env, golden, tmp_path):
    rules = str(golden["golden"] / "program_rules.yml")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "referral_pipeline.cli",
            "simulate",
            "--rules",
            rules,
            "--from",
            "2025-01",
            "--to",
            "2025-02",
        ],
        env={**os.environ, **env, "REFERRAL_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = golden["url"]
    deadline = time.monotonic() + 120
    # Wait until dbt has built something in the scratch schemas, then stop the command as a scheduler would.
    while time.monotonic() < deadline and proc.poll() is None:
        if any(s.endswith("_staging") for s in scratch_left(url)):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    assert scratch_left(url) == []
    assert "scratch schemas removed" in out
    assert not (tmp_path / "simulations").exists()
    assert list((tmp_path / "dbt" / "simulations").glob("*")) == []


def test_a_login_that_may_not_create_schemas_is_refused_in_one_line(env, golden, capsys):
    """A login that reads what the simulation reads but may not create schemas (e.g. a transformer login)."""
    from conftest import _as_url
    from psycopg.conninfo import conninfo_to_dict

    url = golden["url"]
    role = f"sim_reader_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"create role {role} login")
        conn.execute(f"grant usage on schema marts, intermediate, rules, raw, controls to {role}")
        conn.execute(f"grant select on all tables in schema marts, intermediate, rules to {role}")
    try:
        params = conninfo_to_dict(url)
        params["user"] = role
        params.pop("password", None)
        rules = str(golden["golden"] / "program_rules.yml")
        code = simulate(
            {**env, "REFERRAL_WAREHOUSE_URL": _as_url(params)},
            "--rules",
            rules,
            "--from",
            "2025-01",
            "--to",
            "2025-02",
        )
        err = capsys.readouterr().err.strip()
        assert code == 1, err
        assert len(err.splitlines()) == 1
        assert f"role {role} may not create schemas in database" in err and "grant create on database" in err
        assert scratch_left(url) == []
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")


def test_an_override_recorded_after_the_last_build_is_noted_and_counts_on_the_proposed_side_only(
    env, golden, tmp_path, capsys
):
    """Last in this module: it adds a control row to the golden warehouse."""
    with scoped_env(env):
        assert (
            main(["override", "D-00001", "--credit", "PTR-0002=1", "--by", "Test", "--reason", "what-if"])
            == 0
        )
    capsys.readouterr()
    rules = str(golden["golden"] / "program_rules.yml")
    assert (
        simulate(env, "--rules", rules, "--from", WINDOW[0], "--to", WINDOW[1], "--out", str(tmp_path)) == 0
    )
    out = capsys.readouterr().out
    assert "note: 1 attribution override action(s) recorded after the last nightly build" in out
    events = {r["event_id"]: r for r in read(tmp_path / "events.csv")}
    assert events["commission:D-00001:PTR-0001"]["amount_proposed"] == ""
    assert events["commission:D-00001:PTR-0002"]["amount_now"] == ""
    moved = Decimal(events["commission:D-00001:PTR-0001"]["amount_now"])
    assert Decimal(events["commission:D-00001:PTR-0002"]["amount_proposed"]) > 0 < moved
    html = (tmp_path / "simulation.html").read_text(encoding="utf-8")
    assert '<p class="note">note: 1 attribution override action(s)' in html
