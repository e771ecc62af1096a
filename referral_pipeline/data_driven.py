"""Data-driven attribution (analysis only, see docs/analytics.md): a first-order Markov removal effect and a
simplified Shapley value over partners, fitted on the paths of resolved deals, and per-deal credits from the
fitted global weights.

Plain Python and numpy, no warehouse and no Dagster: the asset in orchestration/assets/data_driven.py reads
marts.fct_deal_paths, calls `fit` and `deal_credits`, and writes the results.

Every result is deterministic and does not depend on the order of the input: partners are indexed in sorted
order, transitions and coalitions are counted (integers), the Markov chain is solved exactly (an absorbing
chain's linear system, no simulation) and the Shapley values are exact rationals.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from itertools import combinations

import numpy as np

MODELS = ("markov", "shapley")
WINDOW_MONTHS = 12
# Stored credits and weights: numeric(18, 15). 15 decimals, as the rule-based credits are compared to 1e-9.
SCALE = 15
QUANTUM = Decimal(1).scaleb(-SCALE)


@dataclass(frozen=True)
class DealPath:
    """One deal: its partners in path order (repeats allowed) and whether it was won."""

    deal_id: str
    partners: tuple[str, ...]
    converted: bool


@dataclass(frozen=True)
class ModelFit:
    """One model's fit: the score each partner's weight is made from, and the normalised weights."""

    model: str
    scores: dict[str, float]  # markov: removal effect; shapley: Shapley value summed over the paths
    weights: dict[str, Decimal]  # 0..1, sum to exactly 1 (all 0 when nothing converted)


@dataclass(frozen=True)
class Fit:
    paths: int
    conversions: int
    partner_paths: dict[str, int]  # resolved paths with the partner on them
    partner_conversions: dict[str, int]
    models: dict[str, ModelFit]


def fit_window(fit_date: dt.date, months: int = WINDOW_MONTHS) -> tuple[dt.date, dt.date]:
    """(window_start, window_end), both inclusive: deals won or lost on a UTC date from `months` months before
    the fit date up to the day before it. 2025-03-01 gives 2024-03-01 .. 2025-02-28; a day that does not exist
    in the start month becomes that month's last day (2024-02-29 gives 2023-02-28)."""
    y, m = divmod(fit_date.year * 12 + fit_date.month - 1 - months, 12)
    m += 1
    last = (dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(y, m, min(fit_date.day, last)), fit_date - dt.timedelta(days=1)


# --- Markov removal effect ---------------------------------------------------------------------------------


def _collapse(partners: Sequence[str]) -> list[str]:
    """Consecutive touches of the same partner are one state visit. (A self-loop would not change absorption
    probabilities anyway: it only delays leaving the state.)"""
    out: list[str] = []
    for p in partners:
        if not out or out[-1] != p:
            out.append(p)
    return out


def _transitions(paths: Iterable[DealPath]) -> tuple[list[str], np.ndarray]:
    """Transition probabilities of the first-order chain over start, the partners (sorted), conversion and
    null. Row i = state i (0 = start, 1..n = partners); columns 0..n the same states, n+1 = conversion, n+2 =
    null. Each path is start -> p1 -> ... -> pk -> conversion (won) or null (lost)."""
    counts: Counter[tuple[str, str]] = Counter()
    for path in paths:
        states = ["(start)", *_collapse(path.partners), "(conversion)" if path.converted else "(null)"]
        counts.update(zip(states, states[1:], strict=False))
    partners = sorted({s for pair in counts for s in pair} - {"(start)", "(conversion)", "(null)"})
    index = {"(start)": 0, **{p: i + 1 for i, p in enumerate(partners)}}
    n = len(partners)
    index["(conversion)"], index["(null)"] = n + 1, n + 2
    matrix = np.zeros((n + 1, n + 3))
    for (a, b), c in sorted(counts.items()):
        matrix[index[a], index[b]] = c
    totals = matrix.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1  # a state never left (only when there is no path at all)
    return partners, matrix / totals


def _conversion_probability(probabilities: np.ndarray, removed: int | None = None) -> float:
    """Probability of reaching conversion from start, by solving (I - Q) x = r, where Q holds the transient
    transitions and r the transitions into conversion. Removing a state sends every transition into it to
    null (its column of Q is zeroed)."""
    n1 = probabilities.shape[0]
    q = probabilities[:, :n1].copy()
    r = probabilities[:, n1]
    if removed is not None:
        q[:, removed] = 0.0
    x = np.linalg.solve(np.eye(n1) - q, r)
    return float(x[0])


def markov_removal_effects(paths: Iterable[DealPath]) -> dict[str, float]:
    """Removal effect of each partner: 1 - P(conversion without the partner) / P(conversion), in [0, 1]; all
    0 when nothing converts."""
    partners, probabilities = _transitions(paths)
    if not partners:
        return {}
    base = _conversion_probability(probabilities)
    effects = {}
    for i, p in enumerate(partners, start=1):
        if base <= 0:
            effects[p] = 0.0
            continue
        without = _conversion_probability(probabilities, removed=i)
        effects[p] = min(1.0, max(0.0, 1.0 - without / base))
    return effects


# --- simplified Shapley ------------------------------------------------------------------------------------


def coalition_values(paths: Iterable[DealPath]) -> dict[frozenset[str], tuple[int, int]]:
    """(paths, conversions) of every partner set that occurs: the distinct partners of a path, exactly."""
    seen: dict[frozenset[str], list[int]] = {}
    for path in paths:
        entry = seen.setdefault(frozenset(path.partners), [0, 0])
        entry[0] += 1
        entry[1] += int(path.converted)
    return {s: (n, c) for s, (n, c) in seen.items()}


def shapley_of_coalition(
    coalition: frozenset[str], values: Mapping[frozenset[str], Fraction]
) -> dict[str, Fraction]:
    """Exact Shapley values of the game on the partners of `coalition`, where a sub-coalition's value is the
    conversion rate of the paths whose partner set is exactly it, and 0 when no path has exactly that set (the
    empty set included). The values sum to the coalition's own value.

    Only sub-coalitions with a value count: phi_i = sum over seen T within the coalition of v(T) times
    (t-1)!(s-t)!/s! when i is in T, and minus t!(s-t-1)!/s! when it is not (the usual sum of weighted
    marginal contributions v(U + i) - v(U), regrouped by coalition)."""
    s = len(coalition)
    if len(values) >= 2**s:
        subsets = (frozenset(c) for t in range(1, s + 1) for c in combinations(sorted(coalition), t))
        seen = [(t, values[t]) for t in subsets if t in values]
    else:
        seen = [(t, v) for t, v in values.items() if t <= coalition]
    fs = math.factorial(s)
    phi = {}
    for i in sorted(coalition):
        total = Fraction(0)
        for t_set, v in seen:
            t = len(t_set)
            if i in t_set:
                total += v * Fraction(math.factorial(t - 1) * math.factorial(s - t), fs)
            else:
                total -= v * Fraction(math.factorial(t) * math.factorial(s - t - 1), fs)
        phi[i] = total
    return phi


def shapley_scores(paths: Iterable[DealPath]) -> dict[str, Fraction]:
    """Each partner's Shapley value summed over the paths: sum over the partner sets S that occur of
    paths(S) x phi_i(S). They add up to the number of won deals; a partner whose paths win less often than
    the same paths without it scores below 0."""
    coalitions = coalition_values(paths)
    values = {s: Fraction(c, n) for s, (n, c) in coalitions.items() if c}
    scores: dict[str, Fraction] = {p: Fraction(0) for s in coalitions for p in s}
    for s, (n, _c) in sorted(coalitions.items(), key=lambda kv: sorted(kv[0])):
        for p, phi in shapley_of_coalition(s, values).items():
            scores[p] += n * phi
    return scores


# --- weights and credits -----------------------------------------------------------------------------------


def to_decimal(x: float | Fraction | Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        if isinstance(x, Fraction):
            d = Decimal(x.numerator) / Decimal(x.denominator)
        else:
            d = Decimal(x)
        return d.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def shares(amounts: Mapping[str, Decimal | float | Fraction]) -> dict[str, Decimal]:
    """Split 1 among the keys in proportion to `amounts` (negatives count as 0; all 0: an equal split), with
    15 decimals that add up to exactly 1: the rounding remainder goes to the largest share (the first key in
    sorted order among equals)."""
    keys = sorted(amounts)
    if not keys:
        return {}
    with localcontext() as ctx:
        ctx.prec = 60
        positive = {k: max(Decimal(0), to_decimal(amounts[k])) for k in keys}
        total = sum(positive.values(), Decimal(0))
        if total > 0:
            raw = {k: positive[k] / total for k in keys}
        else:
            raw = {k: Decimal(1) / len(keys) for k in keys}
        out = {k: v.quantize(QUANTUM, rounding=ROUND_HALF_EVEN) for k, v in raw.items()}
        top = max(out.values())
        largest = next(k for k in keys if out[k] == top)
        out[largest] += Decimal(1) - sum(out.values(), Decimal(0))
    return out


def normalise(scores: Mapping[str, float | Fraction]) -> dict[str, Decimal]:
    """Global weights: scores (negatives as 0) divided by their sum, exactly 1 in total; all 0 when no score
    is above 0 (nothing converted)."""
    if not any(v > 0 for v in scores.values()):
        return {k: Decimal(0).quantize(QUANTUM) for k in sorted(scores)}
    return shares(scores)


def deal_credits(partners: Iterable[str], weights: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """A deal's credits: its distinct partners share 1 in proportion to their global weights; a partner the fit
    has not seen weighs 0; when all of them weigh 0, they share 1 equally."""
    distinct = set(partners)
    return shares({p: weights.get(p, Decimal(0)) for p in distinct})


def fit(paths: Iterable[DealPath]) -> Fit:
    """Both models on resolved paths (won = converted, lost = not); paths without a partner are ignored."""
    resolved = sorted((p for p in paths if p.partners), key=lambda p: p.deal_id)
    partner_paths: Counter[str] = Counter()
    partner_conversions: Counter[str] = Counter()
    for p in resolved:
        for partner in set(p.partners):
            partner_paths[partner] += 1
            partner_conversions[partner] += int(p.converted)
    markov = markov_removal_effects(resolved)
    shapley = shapley_scores(resolved)
    return Fit(
        paths=len(resolved),
        conversions=sum(p.converted for p in resolved),
        partner_paths=dict(partner_paths),
        partner_conversions=dict(partner_conversions),
        models={
            "markov": ModelFit("markov", dict(markov), normalise(markov)),
            "shapley": ModelFit("shapley", {k: float(v) for k, v in shapley.items()}, normalise(shapley)),
        },
    )
