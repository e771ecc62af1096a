"""Property (SPEC section 6): over random deals and touch paths, the attribution models built by dbt
(int_attribution__paths, __touch_weights, __credits) give weights summing to 1 per deal, follow each model's
defining rule, and do not depend on the physical order of their input rows.

The models' inputs (int_deals__enriched, int_touchpoints__touchpoints) are plain tables written here, so only
the three attribution models (and the rules view they read) are built."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal, localcontext
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from referral_pipeline.dbt_cli import dbt_env
from referral_pipeline.rules import load_rules, write_rules
from referral_pipeline.warehouse import ensure_schema

ROOT = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).with_name("dbt")
SELECTION = [
    "stg_rules__versions",
    "int_attribution__paths",
    "int_attribution__touch_weights",
    "int_attribution__credits",
]
TYPES = ("referral", "marketing", "link_click")  # path order of touch types at equal occurred_at
PREFIX = {"referral": "ref", "marketing": "ma", "link_click": "clk"}
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
TOLERANCE = Decimal("1e-20")  # SPEC 6 "Precision": at least 20 significant digits
RATIO_TOLERANCE = Decimal("1e-15")
US = 10**6
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOISE = ("too_old", "after_created", "excluded", "other_account")  # touches that must not be on the path

UPSTREAM_DDL = """
create schema if not exists intermediate;
create table intermediate.int_deals__enriched (
  deal_id text primary key, created_at timestamptz not null, is_deleted boolean not null,
  account_key text, attribution_rules_version text not null
);
create table intermediate.int_touchpoints__touchpoints (
  touch_id text primary key, touch_type text not null, partner_id text not null,
  occurred_at timestamptz not null, account_key text, exclusion_reason text
);
"""


@pytest.fixture(scope="module")
def attribution_warehouse(new_database, golden_dir, tmp_path_factory):
    """A warehouse with the golden rules and hand-made inputs of the attribution models; returns
    (url, dbt work dir, rules version)."""
    url = new_database("attr_prop")
    ensure_schema(url)
    rules = load_rules(golden_dir / "program_rules.yml")
    with psycopg.connect(url) as conn:
        write_rules(conn, rules)
        conn.execute(UPSTREAM_DDL)
    return url, tmp_path_factory.mktemp("attr_prop_dbt"), rules.versions[-1]


# --- random batches ----------------------------------------------------------------------------------------


def batches(lookback_us: dict[str, int]) -> st.SearchStrategy[list[dict]]:
    """Deals, each on its own account, with 1..8 touches of 1..4 partners (ages before created_at in
    microseconds, often tied, boundaries included) and 0..2 touches that must stay off the path."""

    def age(touch_type: str) -> st.SearchStrategy[int]:
        limit = lookback_us[touch_type]
        return st.one_of(st.sampled_from([0, 1, 3600 * US, 86400 * US, limit]), st.integers(0, limit))

    def touch(partners: int) -> st.SearchStrategy[dict]:
        return st.sampled_from(TYPES).flatmap(
            lambda t: st.fixed_dictionaries(
                {
                    "type": st.just(t),
                    "partner": st.sampled_from([f"P{i}" for i in range(1, partners + 1)]),
                    "age_us": age(t),
                    # mixed case and punctuation: byte order (collate "C") differs from a locale's order
                    "token": st.text(alphabet="aBb0_-", min_size=1, max_size=3),
                }
            )
        )

    deal = st.integers(1, 4).flatmap(
        lambda partners: st.fixed_dictionaries(
            {
                "created_us": st.integers(0, 300 * 86400 * US),
                "deleted": st.integers(0, 7).map(lambda x: x == 0),
                "touches": st.lists(
                    touch(partners), min_size=1, max_size=8, unique_by=lambda t: (t["type"], t["token"])
                ),
                "noise": st.lists(st.tuples(st.sampled_from(NOISE), st.sampled_from(TYPES)), max_size=2),
            }
        )
    )
    return st.lists(deal, min_size=20, max_size=40)


def to_rows(batch: list[dict], lookback_us: dict[str, int]) -> tuple[list[tuple], list[tuple], dict]:
    """Rows of the two input tables, and the expected path of each deal: [(touch, age_us), ...] in path order."""
    deals, touches, paths = [], [], {}
    for k, d in enumerate(batch):
        deal_id, account = f"D{k}", f"domain:acct{k}.example"
        created = T0 + dt.timedelta(microseconds=d["created_us"])
        deals.append((deal_id, created, d["deleted"], account, None))
        on_path = []
        for t in d["touches"]:
            touch_id = f"{PREFIX[t['type']]}:{k}-{t['token']}"
            occurred = created - dt.timedelta(microseconds=t["age_us"])
            touches.append((touch_id, t["type"], t["partner"], occurred, account, None))
            on_path.append({**t, "id": touch_id})
        for j, (kind, touch_type) in enumerate(d["noise"]):
            age_us = {"too_old": lookback_us[touch_type] + 1, "after_created": -1}.get(kind, 0)
            touches.append(
                (
                    f"{PREFIX[touch_type]}:{k}-noise{j}",
                    touch_type,
                    "P1",
                    created - dt.timedelta(microseconds=age_us),
                    f"domain:other{k}.example" if kind == "other_account" else account,
                    "self_referral" if kind == "excluded" else None,
                )
            )
        on_path.sort(key=lambda t: (-t["age_us"], TYPES.index(t["type"]), t["id"].encode()))
        paths[deal_id] = [] if d["deleted"] else on_path
    return deals, touches, paths


# --- running the models --------------------------------------------------------------------------------------


def load_inputs(url: str, version: str, deals: list[tuple], touches: list[tuple]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("truncate intermediate.int_deals__enriched, intermediate.int_touchpoints__touchpoints")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into intermediate.int_deals__enriched values (%s, %s, %s, %s, %s)",
                [(*d[:4], version) for d in deals],
            )
            cur.executemany(
                "insert into intermediate.int_touchpoints__touchpoints values (%s, %s, %s, %s, %s, %s)",
                touches,
            )


def run_models(url: str, work: Path) -> dict[str, list[tuple]]:
    env = {
        **os.environ,
        **dbt_env(url),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
    }
    dbt_dir = str(ROOT / "dbt_project")
    args = [str(DBT), "run", "--select", *SELECTION, "--project-dir", dbt_dir, "--profiles-dir", dbt_dir]
    res = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"dbt run failed:\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
    queries = {
        "paths": "select * from intermediate.int_attribution__paths order by deal_id, touch_id",
        "weights": "select * from intermediate.int_attribution__touch_weights order by deal_id, touch_id",
        "credits": "select * from intermediate.int_attribution__credits order by deal_id, partner_id, model",
    }
    with psycopg.connect(url) as conn:
        out = {}
        for name, sql in queries.items():
            cur = conn.execute(sql)
            cols = [c.name for c in cur.description]
            out[name] = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        return out


# --- the expected values -------------------------------------------------------------------------------------


def expected_weights(path: list[dict], half_life_s: Decimal) -> dict[str, list[Decimal]]:
    n = len(path)
    if n == 1:
        position = [Decimal(1)]
    elif n == 2:
        position = [Decimal("0.5")] * 2
    else:
        position = [Decimal("0.4"), *[Decimal("0.2") / (n - 2)] * (n - 2), Decimal("0.4")]
    raw = [Decimal("0.5") ** (Decimal(t["age_us"]) / US / half_life_s) for t in path]
    return {
        "first_touch": [Decimal(i == 0) for i in range(n)],
        "last_touch": [Decimal(i == n - 1) for i in range(n)],
        "linear": [Decimal(1) / n] * n,
        "time_decay": [r / sum(raw) for r in raw],
        "position_based": position,
    }


def close(a: Decimal, b: Decimal, tol: Decimal = TOLERANCE) -> bool:
    return abs(a - b) <= tol


def check_deal(
    deal_id: str, path: list[dict], weights: list[dict], credits: list[dict], half_life_s: Decimal
) -> None:
    assert [w["touch_id"] for w in sorted(weights, key=lambda w: w["path_position"])] == [
        t["id"] for t in path
    ]
    if not path:
        assert credits == []
        return
    n = len(path)
    by_id = {w["touch_id"]: w for w in weights}
    rows = [by_id[t["id"]] for t in path]
    assert all(w["path_length"] == n for w in rows)
    expected = expected_weights(path, half_life_s)
    for model in MODELS:
        got = [w[model] for w in rows]
        assert close(sum(got), Decimal(1)), (deal_id, model, got)
        for g, e in zip(got, expected[model], strict=True):
            assert close(g, e), (deal_id, model, got, expected[model])
    # first/last touch are exact
    assert [w["first_touch"] for w in rows] == expected["first_touch"]
    assert [w["last_touch"] for w in rows] == expected["last_touch"]
    # time decay: monotone in recency, ratios 0.5 ^ (age difference / half-life)
    decay = [(t["age_us"], w["time_decay"]) for t, w in zip(path, rows, strict=True)]
    for age_a, w_a in decay:
        for age_b, w_b in decay:
            if age_a > age_b:
                assert w_a < w_b, (deal_id, decay)
            elif age_a == age_b:
                assert w_a == w_b, (deal_id, decay)
            ratio = Decimal("0.5") ** (Decimal(age_a - age_b) / US / half_life_s)
            assert close(w_a / w_b, ratio, RATIO_TOLERANCE * ratio), (deal_id, decay)
    # credits: per partner on the path and model, the sum of its touches' weights
    want: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    counts: dict[str, int] = defaultdict(int)
    for i, t in enumerate(path):
        counts[t["partner"]] += 1
        for model in MODELS:
            want[(t["partner"], model)] += expected[model][i]
    got_credits = {(c["partner_id"], c["model"]): c["credit"] for c in credits}
    assert set(got_credits) == set(want), deal_id
    assert {c["partner_id"]: c["touch_count"] for c in credits} == counts
    for key, credit in got_credits.items():
        assert close(credit, want[key]), (deal_id, key, credit, want[key])
        assert Decimal(0) <= credit <= Decimal(1), (deal_id, key, credit)
    for model in MODELS:
        assert close(sum(c for (_, m), c in got_credits.items() if m == model), Decimal(1)), (deal_id, model)


# --- the property ----------------------------------------------------------------------------------------------


# Each example costs two dbt runs: few examples of many deals, and no shrinking (a failure names its deal).
@settings(
    max_examples=5,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_attribution_models_properties(attribution_warehouse, data):
    url, work, version = attribution_warehouse
    lookback_us = {t: days * 86400 * US for t, days in version.lookback_days.items()}
    half_life_s = Decimal(version.time_decay_half_life_days) * 86400
    batch = data.draw(batches(lookback_us), label="batch")
    deals, touches, paths = to_rows(batch, lookback_us)

    load_inputs(url, version.version_id, deals, touches)
    out = run_models(url, work)

    with localcontext() as ctx:
        ctx.prec = 60
        for deal_id, path in paths.items():
            check_deal(
                deal_id,
                path,
                [w for w in out["weights"] if w["deal_id"] == deal_id],
                [c for c in out["credits"] if c["deal_id"] == deal_id],
                half_life_s,
            )
    ages = {t["id"]: t["age_us"] for path in paths.values() for t in path}
    for p in out["paths"]:
        assert p["seconds_before_created"] == Decimal(ages[p["touch_id"]]) / US

    # the same rows in another physical order give identical outputs
    rnd = data.draw(st.randoms(use_true_random=False), label="shuffle")
    rnd.shuffle(deals)
    rnd.shuffle(touches)
    load_inputs(url, version.version_id, deals, touches)
    assert run_models(url, work) == out
