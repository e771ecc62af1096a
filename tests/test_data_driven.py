"""Data-driven attribution (docs/analytics.md): the Markov removal effect and the simplified Shapley value on
cases worked out by hand, against small independent implementations, as properties, in the warehouse
(window, replacement) and on the golden example."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referral_pipeline import data_driven
from referral_pipeline.config import DEFAULT_RULES_FILE
from referral_pipeline.data_driven import DealPath, deal_credits, fit
from referral_pipeline.rules import RulesError, parse_rules

D = Decimal


def _paths(*spec: tuple[str, bool]) -> list[DealPath]:
    """'A>B' + won -> a deal whose path is A then B."""
    return [DealPath(f"D{i:03d}", tuple(s.split(">")), won) for i, (s, won) in enumerate(spec)]


# Two partners. Paths (start S, conversion C, null N):
#   S>A>C, S>A>N, S>B>C, S>B>N x3, S>A>B>C, S>B>A>C            (8 deals, 4 won)
# Transitions: S: A 3/8, B 5/8.  A: C 2/4, N 1/4, B 1/4.  B: C 2/6, N 3/6, A 1/6.
# Conversion from A, B: a = 1/2 + b/4, b = 1/3 + a/6  =>  a = 14/23, b = 10/23.
# P(C) = 3/8 * 14/23 + 5/8 * 10/23 = 92/184 = 1/2.
# Without A (into A goes to N): b = 1/3, P = 5/8 * 1/3 = 5/24, removal effect 1 - (5/24)/(1/2) = 7/12.
# Without B: a = 1/2, P = 3/8 * 1/2 = 3/16, removal effect 1 - 3/8 = 5/8.
# Weights: 7/12 : 5/8 = 14 : 15  =>  A 14/29, B 15/29.
# Shapley: v(A) = 1/2 (2 paths), v(B) = 1/4 (4 paths), v(AB) = 1 (2 paths), v(empty) = 0.
#   {A}: A 1/2.  {B}: B 1/4.
#   {A,B}: A = 1/2 v(A) + 1/2 (v(AB) - v(B)) = 1/4 + 3/8 = 5/8;  B = 1/2 v(B) + 1/2 (v(AB) - v(A)) = 3/8.
#   Scores (x paths): A = 2 * 1/2 + 2 * 5/8 = 9/4;  B = 4 * 1/4 + 2 * 3/8 = 7/4  (sum 4 = the won deals).
#   Weights: A 9/16 = 0.5625, B 7/16 = 0.4375.
TWO = _paths(
    ("A", True),
    ("A", False),
    ("B", True),
    ("B", False),
    ("B", False),
    ("B", False),
    ("A>B", True),
    ("B>A", True),
)

# Three partners P, Q, R:  S>P>Q>C, S>P>R>N, S>Q>C, S>R>N, S>P>C, S>Q>R>C   (6 deals, 4 won)
# Transitions: S: P 3/6, Q 2/6, R 1/6.  P: Q, R, C 1/3 each.  Q: C 2/3, R 1/3.  R: C 1/3, N 2/3.
# r = 1/3, q = 2/3 + r/3 = 7/9, p = q/3 + r/3 + 1/3 = 19/27; P(C) = 19/54 + 7/27 + 1/18 = 2/3.
# Without P: 2/6 * 7/9 + 1/6 * 1/3 = 17/54, removal effect 1 - 17/36 = 19/36.
# Without Q: p = r/3 + 1/3 = 4/9, 1/2 * 4/9 + 1/6 * 1/3 = 5/18, removal effect 1 - 5/12 = 7/12.
# Without R: q = 2/3, p = 2/9 + 1/3 = 5/9, 1/2 * 5/9 + 1/3 * 2/3 = 1/2, removal effect 1 - 3/4 = 1/4.
# Sum 49/36: weights P 19/49, Q 21/49, R 9/49.
# Shapley: v(P) = 1, v(Q) = 1, v(R) = 0, v(PQ) = 1, v(PR) = 0, v(QR) = 1 (one path each); v(PQR) unseen.
#   {P,Q}: P = 1/2 * 1 + 1/2 (1 - 1) = 1/2, Q = 1/2.   {P,R}: P = 1/2 * 1 + 1/2 (0 - 0) = 1/2, R = 0 + 1/2 (0 - 1) = -1/2.
#   {Q,R}: Q = 1/2 * 1 + 1/2 (1 - 0) = 1, R = 0 + 1/2 (1 - 1) = 0.   {P}: 1.  {Q}: 1.  {R}: 0.
#   Scores: P = 1/2 + 1/2 + 1 = 2, Q = 1/2 + 1 + 1 = 5/2, R = -1/2 (sum 4 = the won deals).
#   Weights (a negative score counts as 0): P 2/4.5 = 4/9, Q 5/9, R 0.
THREE = _paths(
    ("P>Q", True),
    ("P>R", False),
    ("Q", True),
    ("R", False),
    ("P", True),
    ("Q>R", True),
)


def _close(actual: dict, expected: dict, tol: float = 1e-12) -> None:
    assert set(actual) == set(expected)
    for k, v in expected.items():
        assert abs(float(actual[k]) - float(v)) <= tol, (k, actual[k], v)


def test_two_partners_by_hand():
    result = fit(TWO)
    assert (result.paths, result.conversions) == (8, 4)
    assert result.partner_paths == {"A": 4, "B": 6} and result.partner_conversions == {"A": 3, "B": 3}
    _close(result.models["markov"].scores, {"A": 7 / 12, "B": 5 / 8})
    _close(result.models["markov"].weights, {"A": 14 / 29, "B": 15 / 29})
    assert data_driven.shapley_scores(TWO) == {"A": Fraction(9, 4), "B": Fraction(7, 4)}
    assert result.models["shapley"].weights == {"A": D("0.5625"), "B": D("0.4375")}
    # A deal with both partners: 14/29 = 0.48275862068965517..., 15/29 = 0.51724137931034482... (the fit is
    # in floating point: equal to the last few of the 15 decimals), summing to exactly 1.
    credits = deal_credits(["B", "A", "B"], result.models["markov"].weights)
    _close(credits, {"A": D("0.482758620689655"), "B": D("0.517241379310345")})
    assert sum(credits.values()) == 1
    assert deal_credits(["A", "B"], result.models["shapley"].weights) == {"A": D("0.5625"), "B": D("0.4375")}
    assert deal_credits(["A"], result.models["markov"].weights) == {"A": D(1)}


def test_three_partners_by_hand():
    result = fit(THREE)
    _close(result.models["markov"].scores, {"P": 19 / 36, "Q": 7 / 12, "R": 1 / 4})
    _close(result.models["markov"].weights, {"P": 19 / 49, "Q": 21 / 49, "R": 9 / 49})
    assert data_driven.shapley_scores(THREE) == {"P": Fraction(2), "Q": Fraction(5, 2), "R": Fraction(-1, 2)}
    assert result.models["shapley"].scores == {"P": 2.0, "Q": 2.5, "R": -0.5}
    # Exact rationals: 4/9 and 5/9 to 15 decimals, the remainder to the largest.
    assert result.models["shapley"].weights == {
        "P": D("0.444444444444444"),
        "Q": D("0.555555555555556"),
        "R": D(0),
    }
    # 19/49, 21/49, 9/49 = 0.387755102040816..., 0.428571428571428571..., 0.183673469387755...
    credits = deal_credits(["R", "Q", "P"], result.models["markov"].weights)
    _close(credits, {"P": D("0.387755102040816"), "Q": D("0.428571428571429"), "R": D("0.183673469387755")})
    assert sum(credits.values()) == 1


def test_unseen_sub_coalitions_are_worth_zero():
    # One path with P, Q and R, won; no smaller set occurs, so every sub-coalition is worth 0 and the three
    # share v(PQR) = 1 equally: (3-1)! 0! / 3! = 1/3 each.
    values = {frozenset("PQR"): Fraction(1)}
    assert data_driven.shapley_of_coalition(frozenset("PQR"), values) == {p: Fraction(1, 3) for p in "PQR"}
    # With v(P) = 1 seen as well, over the 6 orders: P first (2 orders) adds v(P) = 1, second (2) adds
    # v(P+x) - v(x) = 0, last (2) adds v(PQR) - v(QR) = 1: P = 4/6. Q first adds 0; second after P (PQR)
    # adds v(PQ) - v(P) = -1, after R (RQP) 0; last (2) adds 1 - v(PR) = 1: Q = 1/6, and R = 1/6 likewise.
    values[frozenset("P")] = Fraction(1)
    phi = data_driven.shapley_of_coalition(frozenset("PQR"), values)
    assert phi == {"P": Fraction(2, 3), "Q": Fraction(1, 6), "R": Fraction(1, 6)}


def test_zero_weights_share_equally_and_credits_sum_exactly_to_one():
    weights = {"A": D(1), "B": D(0)}
    assert deal_credits(["B", "C"], weights) == {"B": D("0.5"), "C": D("0.5")}
    # 1/3 to 15 decimals three times is 0.999999999999999: the remainder goes to the first of the largest.
    thirds = deal_credits(["Z", "Y", "X"], {})
    assert thirds == {"X": D("0.333333333333334"), "Y": D("0.333333333333333"), "Z": D("0.333333333333333")}
    assert sum(thirds.values()) == 1


def test_nothing_won_gives_zero_weights():
    result = fit(_paths(("A", False), ("A>B", False)))
    for model in data_driven.MODELS:
        assert result.models[model].weights == {"A": 0, "B": 0}
    assert deal_credits(["A", "B"], result.models["markov"].weights) == {"A": D("0.5"), "B": D("0.5")}


def test_result_does_not_depend_on_input_order():
    paths = TWO + [DealPath(f"T{p.deal_id}", p.partners, p.converted) for p in THREE]
    expected = fit(paths)
    rng = random.Random(11)
    for _ in range(5):
        shuffled = paths[:]
        rng.shuffle(shuffled)
        assert fit(shuffled) == expected  # bit for bit, floats included


def test_fit_window_is_twelve_months_before_the_fit_date():
    assert data_driven.fit_window(dt.date(2025, 3, 1)) == (dt.date(2024, 3, 1), dt.date(2025, 2, 28))
    assert data_driven.fit_window(dt.date(2024, 2, 29)) == (dt.date(2023, 2, 28), dt.date(2024, 2, 28))
    assert data_driven.fit_window(dt.date(2025, 1, 15)) == (dt.date(2024, 1, 15), dt.date(2025, 1, 14))


# --- independent implementations ---------------------------------------------------------------------------


def _markov_by_iteration(paths: list[DealPath]) -> dict[str, float]:
    """Removal effects by pushing probability mass through the chain step by step (no linear solve), with
    repeated touches kept as self-loops."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in paths:
        states = ["start", *p.partners, "conv" if p.converted else "null"]
        for a, b in zip(states, states[1:], strict=False):
            counts[a][b] += 1

    def conversion(removed: str | None) -> float:
        mass, converted = {"start": 1.0}, 0.0
        for _ in range(100_000):
            nxt: dict[str, float] = defaultdict(float)
            for state, m in mass.items():
                total = sum(counts[state].values())
                for b, c in counts[state].items():
                    if b == "conv":
                        converted += m * c / total
                    elif b not in ("null", removed):
                        nxt[b] += m * c / total
            mass = nxt
            if sum(mass.values()) < 1e-16:
                break
        return converted

    base = conversion(None)
    partners = {x for p in paths for x in p.partners}
    return {x: (1 - conversion(x) / base) if base else 0.0 for x in partners}


def _shapley_by_orders(paths: list[DealPath]) -> dict[str, Fraction]:
    """Shapley values by averaging marginal contributions over every order of each occurring partner set."""
    n: dict[frozenset, int] = defaultdict(int)
    won: dict[frozenset, int] = defaultdict(int)
    for p in paths:
        n[frozenset(p.partners)] += 1
        won[frozenset(p.partners)] += p.converted

    def v(s: frozenset) -> Fraction:
        return Fraction(won[s], n[s]) if n.get(s) else Fraction(0)

    scores: dict[str, Fraction] = defaultdict(Fraction)
    for s, count in list(n.items()):
        orders = list(itertools.permutations(sorted(s)))
        for order in orders:
            before: frozenset = frozenset()
            for x in order:
                scores[x] += count * (v(before | {x}) - v(before)) / len(orders)
                before = before | {x}
    return dict(scores)


def test_independent_implementations_agree_on_the_hand_cases():
    for paths in (TWO, THREE):
        _close(fit(paths).models["markov"].scores, _markov_by_iteration(paths), tol=1e-9)
        assert data_driven.shapley_scores(paths) == _shapley_by_orders(paths)


_PARTNERS = ["P1", "P2", "P3", "P4", "P5"]
_path = st.tuples(st.lists(st.sampled_from(_PARTNERS), min_size=1, max_size=5), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_path, min_size=1, max_size=25).filter(lambda ps: any(won for _, won in ps)))
def test_properties_and_agreement(spec):
    paths = [DealPath(f"D{i}", tuple(partners), won) for i, (partners, won) in enumerate(spec)]
    result = fit(paths)
    for model in data_driven.MODELS:
        weights = result.models[model].weights
        assert all(0 <= w <= 1 for w in weights.values())
        assert sum(weights.values()) == 1
        for p in paths:
            credits = deal_credits(p.partners, weights)
            assert set(credits) == set(p.partners)
            assert all(0 <= c <= 1 for c in credits.values())
            assert sum(credits.values()) == 1
    _close(result.models["markov"].scores, _markov_by_iteration(paths), tol=1e-9)
    scores = data_driven.shapley_scores(paths)
    assert scores == _shapley_by_orders(paths)
    assert sum(scores.values()) == sum(p.converted for p in paths)  # efficiency: they share the won deals
    reversed_result = fit(list(reversed(paths)))
    assert reversed_result == result


# --- rules ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["markov", "shapley"])
def test_rules_refuse_a_data_driven_payout_model(model):
    doc = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    doc["versions"][0]["attribution_model"] = model
    with pytest.raises(RulesError) as exc:
        parse_rules(yaml.safe_dump(doc), "rules.yml")
    message = str(exc.value)
    assert "\n" not in message
    for fragment in ("rules.yml", "version 2024-01-01", "attribution_model", repr(model), "analysis only"):
        assert fragment in message


# --- the warehouse -------------------------------------------------------------------------------------------

_PATHS_DDL = """
create schema if not exists marts;
create table marts.fct_deal_paths (
    deal_id text, touch_id text, partner_id text, path_position integer, outcome text, closed_on date,
    is_won boolean, commission_base numeric
);
"""


def test_refit_uses_the_window_and_replaces_the_previous_fit(new_database):
    from orchestration.assets.data_driven import refit

    url = new_database("dd")
    rows = [
        # in the window (2024-03-01 .. 2025-02-28): won with A, lost with B
        ("D1", "t1", "A", 1, "won", dt.date(2024, 3, 1), True, D("1000.10")),
        ("D2", "t2", "B", 1, "lost", dt.date(2025, 2, 28), False, D(0)),
        # outside it: won with B the day before the window, won with B on the fit date, open with B
        ("D3", "t3", "B", 1, "won", dt.date(2024, 2, 29), True, D("500")),
        ("D4", "t4", "B", 1, "won", dt.date(2025, 3, 1), True, D("700")),
        ("D5", "t5", "B", 1, "open", None, False, D(0)),
        ("D5", "t6", "A", 2, "open", None, False, D(0)),
    ]
    with psycopg.connect(url) as conn:
        conn.execute(_PATHS_DDL)
        with conn.cursor().copy("copy marts.fct_deal_paths from stdin") as copy:
            for r in rows:
                copy.write_row(r)

    summary = refit(url, dt.date(2025, 3, 1))
    assert (summary["resolved_paths"], summary["conversions"]) == (2, 1)
    refit(url, dt.date(2025, 3, 1))  # a second fit replaces the first
    with psycopg.connect(url) as conn:
        weights = conn.execute(
            "select model, partner_id, weight, paths, conversions, fit_date, window_start, window_end "
            "from marts.dim_partner_weights_data_driven order by 1, 2"
        ).fetchall()
        credits = conn.execute(
            "select model, deal_id, partner_id, credit, is_won, attributed_revenue "
            "from marts.fct_attribution_data_driven order by 1, 2, 3"
        ).fetchall()
    dates = (dt.date(2025, 3, 1), dt.date(2024, 3, 1), dt.date(2025, 2, 28))
    # Only D1 (A, won) and D2 (B, lost) count: A takes the whole weight under both models.
    assert weights == [
        (m, p, D(1) if p == "A" else D(0), 1, 1 if p == "A" else 0, *dates)
        for m in ("markov", "shapley")
        for p in "AB"
    ]
    expected = []
    for m in ("markov", "shapley"):
        expected += [
            (m, "D1", "A", D(1), True, D("1000.10")),
            (m, "D2", "B", D(1), False, D(0)),  # its only partner weighs 0: equal split of 1
            (m, "D3", "B", D(1), True, D("500")),
            (m, "D4", "B", D(1), True, D("700")),
            (m, "D5", "A", D(1), False, D(0)),  # open: credited, not fitted
            (m, "D5", "B", D(0), False, D(0)),
        ]
    assert [r[:4] for r in credits] == [r[:4] for r in expected]
    assert [r[4:] for r in credits] == [r[4:] for r in expected]


# --- the golden example ------------------------------------------------------------------------------------


def test_golden_example_tables(golden_nightly):
    url = golden_nightly["url"]
    with psycopg.connect(url) as conn:
        sums = conn.execute(
            "select model, count(distinct deal_id), count(*) filter (where s <> 1) from ("
            "  select deal_id, model, sum(credit) as s from marts.fct_attribution_data_driven group by 1, 2"
            ") x group by model order by model"
        ).fetchall()
        deals = conn.execute("select count(distinct deal_id) from marts.fct_deal_paths").fetchone()[0]
        same_as_paths = conn.execute(
            "select count(*) from ("
            "  (select deal_id, touch_id from marts.fct_deal_paths"
            "   except select deal_id, touch_id from intermediate.int_attribution__paths)"
            "  union all"
            "  (select deal_id, touch_id from intermediate.int_attribution__paths"
            "   except select deal_id, touch_id from marts.fct_deal_paths)"
            ") x"
        ).fetchone()[0]
        fits = conn.execute(
            "select distinct fit_date, window_start, window_end from marts.fct_attribution_data_driven "
            "union select distinct fit_date, window_start, window_end from marts.dim_partner_weights_data_driven"
        ).fetchall()
        weight_sums = conn.execute(
            "select model, sum(weight), min(weight) >= 0 from marts.dim_partner_weights_data_driven group by 1 order by 1"
        ).fetchall()
        revenue = conn.execute(
            "select count(*) from marts.fct_attribution_data_driven a"
            " join (select distinct deal_id, commission_base from marts.fct_deal_paths) d using (deal_id)"
            " where a.attributed_revenue <> case when a.is_won then a.credit * d.commission_base else 0 end"
        ).fetchone()[0]
        resolved = conn.execute(
            "select deal_id, partner_id, outcome from marts.fct_deal_paths"
            " where outcome <> 'open' and closed_on between '2024-03-01' and '2025-02-28'"
            ' order by deal_id collate "C", path_position'
        ).fetchall()
        stored = dict(
            conn.execute(
                "select partner_id, model_score from marts.dim_partner_weights_data_driven where model = 'markov'"
            ).fetchall()
        )
    assert deals > 0
    assert sums == [("markov", deals, 0), ("shapley", deals, 0)]
    assert same_as_paths == 0
    assert fits == [(dt.date(2025, 3, 1), dt.date(2024, 3, 1), dt.date(2025, 2, 28))]
    assert weight_sums == [("markov", D(1), True), ("shapley", D(1), True)]
    assert revenue == 0
    # The stored removal effects agree with the independent implementation run on the mart's paths.
    by_deal: dict[str, list] = {}
    for deal_id, partner_id, outcome in resolved:
        by_deal.setdefault(deal_id, [[], outcome == "won"])[0].append(partner_id)
    paths = [DealPath(d, tuple(ps), won) for d, (ps, won) in by_deal.items()]
    assert any(p.converted for p in paths) and any(not p.converted for p in paths)
    for partner, effect in _markov_by_iteration(paths).items():
        assert abs(float(stored[partner]) - effect) < 1e-9, partner
