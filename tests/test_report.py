"""The program report on the golden example (the session's golden nightly, not rerun): the `report` command
writes one self-contained HTML file and a PNG per chart, byte-identical on a rerun; real headless Chromium
renders every chart with no script error and no request; the page shows the golden example's known totals;
the nightly's `program_report` asset wrote the report and links to it."""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from browser import browser_page

from referral_pipeline.cli import main

from golden import scoped_env

CHARTS = 4  # performance, attribution, payouts, data quality


def _money(value: str | Decimal) -> str:
    return f"{Decimal(value):,}"


def _expected(golden: Path, name: str) -> list[dict[str, str]]:
    with open(golden / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def env(golden_nightly, tmp_path_factory) -> dict[str, str]:
    return {
        **golden_nightly["env"],
        "REFERRAL_DATA_DIR": str(tmp_path_factory.mktemp("report-data")),
        "REFERRAL_IP_HASH_KEY": os.environ["REFERRAL_IP_HASH_KEY"],
    }


def report(env: dict[str, str], *args: str) -> int:
    with scoped_env(env):
        return main(["report", *args])


@pytest.fixture(scope="module")
def written(env, tmp_path_factory) -> dict:
    """The report written twice to two folders, and once to the default folder."""
    first, second = tmp_path_factory.mktemp("report-1"), tmp_path_factory.mktemp("report-2")
    assert report(env, "--out", str(first)) == 0
    assert report(env, "--out", str(second)) == 0
    assert report(env) == 0
    return {"first": first, "second": second, "default": Path(env["REFERRAL_DATA_DIR"]) / "reports"}


def test_report_writes_html_and_one_png_per_chart_and_says_where(env, tmp_path, capsys):
    assert report(env, "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    html = tmp_path / "program-report.html"
    pngs = sorted(tmp_path.glob("program-report-*.png"))
    assert html.is_file() and str(html) in out
    assert len(pngs) == CHARTS
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, png
        assert png.name in out


def test_the_default_folder_is_the_data_folders_reports(written):
    assert (written["default"] / "program-report.html").is_file()
    assert len(list(written["default"].glob("program-report-*.png"))) == CHARTS


def test_a_rerun_writes_identical_bytes(written):
    names = sorted(p.name for p in written["first"].iterdir())
    assert names == sorted(p.name for p in written["second"].iterdir())
    assert len(names) == CHARTS + 1
    for name in names:
        assert (written["first"] / name).read_bytes() == (written["second"] / name).read_bytes(), name
        assert (written["first"] / name).read_bytes() == (written["default"] / name).read_bytes(), name


def test_the_html_is_self_contained(written):
    text = (written["first"] / "program-report.html").read_text(encoding="utf-8")
    lowered = text.lower()
    assert "<script" not in lowered and "<link" not in lowered and "@import" not in lowered
    urls = re.findall(r"[a-z]+://[^\s\"'<>)]+", text)
    assert urls and all(u.startswith("http://www.w3.org/") for u in urls), sorted(set(urls))[:5]


def test_the_browser_renders_every_chart_and_the_known_totals(written, golden_nightly):
    golden = golden_nightly["golden"]
    with browser_page(written["first"] / "program-report.html") as page:
        assert page.errors == []
        charts = page.locator("figure.chart svg")
        assert charts.count() == CHARTS
        for i in range(CHARTS):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 300 and box["height"] > 150, (i, box)
        text = page.locator("body").inner_text()
    assert "As of 2025-03-01" in text
    # Payout batches: the paid total of each published month.
    for batch in _expected(golden, "expected_batches.csv"):
        assert _money(batch["total_amount"]) in text, batch
    # Paid per payout currency: the partners' transfers of each month.
    per_currency: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for p in _expected(golden, "expected_payouts.csv"):
        per_currency[(p["period"], p["payout_currency"])] += Decimal(p["payout_amount"])
    section = text[text.index("Payouts per month and currency") :]
    for (period, currency), amount in per_currency.items():
        assert f"{period}\t{currency}" in section and _money(amount) in section, (period, currency, amount)
    # Held and deferred of 2025-02.
    held = sum(
        Decimal(r["amount"])
        for r in _expected(golden, "expected_review_queue.csv")
        if r["period"] == "2025-02"
    )
    deferred = _expected(golden, "expected_deferred.csv")
    assert _money(held) in section and _money(deferred[0]["balance"]) in section


def test_the_data_quality_days_add_up_to_the_rejected_rows(written, golden_nightly):
    expected = len(_expected(golden_nightly["golden"], "expected_rejected_rows.csv"))
    with browser_page(written["first"] / "program-report.html") as page:
        rows = page.locator("#data-quality details table tbody tr")
        cells = [rows.nth(i).locator("td").all_text_contents() for i in range(rows.count())]
    assert sum(int(c[1]) for c in cells) == expected
    assert [c[0] for c in cells] == sorted(c[0] for c in cells)


def test_attribution_lists_every_model_with_the_data_driven_fit(written, golden_nightly):
    text = (written["first"] / "program-report.html").read_text(encoding="utf-8")
    section = text[text.index('id="attribution"') : text.index('id="payouts"')]
    for model in ("first_touch", "last_touch", "linear", "time_decay", "position_based", "payout"):
        assert f"<th>{model}</th>" in section
    # The nightly fits the data-driven models before the report: both are listed, with the fit's dates.
    assert "<th>markov</th>" in section and "<th>shapley</th>" in section
    assert "<h3>Data-driven fit</h3>" in section and "<td>2025-03-01</td>" in section


def test_without_the_data_driven_table_the_report_says_the_fit_is_not_available():
    from referral_pipeline.report import ReportData, render_charts, render_html

    data = ReportData(
        as_of=None,
        period=None,
        program_currency="USD",
        partners={},
        performance=[],
        attribution=[],
        data_driven=None,
    )
    charts = render_charts(data)
    page = render_html(data, charts, {name: f"{name}.png" for name in charts})
    assert "The data-driven fit (Markov, Shapley) is not available" in page
    assert page.count("<svg") == CHARTS


def test_period_keeps_the_months_up_to_and_including_it(env, tmp_path, capsys):
    assert report(env, "--period", "2025-01", "--out", str(tmp_path)) == 0
    html = tmp_path / "program-report-2025-01.html"
    assert html.is_file() and len(list(tmp_path.glob("program-report-2025-01-*.png"))) == CHARTS
    text = html.read_text(encoding="utf-8")
    assert "months up to and including 2025-01" in text
    assert _money("4133.34") in text and _money("43180.71") not in text
    for section in ("performance", "payouts", "data-quality"):  # no February month, batch or day
        part = text[text.index(f'<section id="{section}">') :]
        assert "<td>2025-02" not in part[: part.index("</section>")], section


def test_a_bad_period_is_a_usage_error(env, capsys):
    with pytest.raises(SystemExit) as exc:
        report(env, "--period", "2025-13")
    assert exc.value.code == 2
    assert "expected a month YYYY-MM" in capsys.readouterr().err


def test_a_warehouse_without_marts_is_one_line(warehouse_url, env, tmp_path, capsys):
    assert report({**env, "REFERRAL_WAREHOUSE_URL": warehouse_url}, "--out", str(tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run the nightly job first" in err[0] and "marts." in err[0]
    assert not list(tmp_path.iterdir())


def test_the_nightly_materialized_the_report_and_links_to_it(golden_nightly):
    from dagster import AssetKey

    instance = golden_nightly["instance"]
    event = instance.get_latest_materialization_event(AssetKey("program_report"))
    assert event is not None and event.run_id in golden_nightly["run_ids"]
    metadata = event.asset_materialization.metadata
    path = Path(metadata["path"].value)
    assert path.is_file() and path.name == "program-report.html"
    assert metadata["report"].value == path.resolve().as_uri()
    assert all(Path(p).is_file() for p in metadata["charts"].value)
    # The file is the data folder's, which later runs of this test session may rewrite: the materialization
    # records the date of the data it reported on.
    assert metadata["as_of"].value == "2025-03-01"


def test_the_report_asset_runs_after_the_marts_payouts_and_data_driven_fit():
    from dagster import AssetKey

    from orchestration.definitions import defs

    parents = defs.resolve_asset_graph().get(AssetKey("program_report")).parent_keys
    for key in (
        ["marts", "fct_partner_performance_monthly"],
        ["marts", "fct_payout_ledger"],
        ["payout_files"],
        ["marts", "fct_attribution_data_driven"],
    ):
        assert AssetKey(key) in parents, key


def test_per_partner_charts_draw_the_ten_partners_with_the_most_revenue_and_say_so():
    import datetime as dt
    from decimal import Decimal

    import matplotlib

    from referral_pipeline.report import CHART_FUNCS, RC_PARAMS, ReportData, _pyplot

    partners = [f"P-{i:02d}" for i in range(25)]  # P-24 earns the most, P-00 the least
    revenue = {p: Decimal(1000 + 10 * i) for i, p in enumerate(partners)}
    attribution = [
        {"partner_id": p, "model": m, "deals": 1, "attributed_revenue": revenue[p]}
        for p in partners
        for m in ("payout", "linear")
    ]
    performance = [
        {
            "partner_id": p,
            "month": dt.date(2025, 1, 1),
            "referrals_submitted": 1,
            "quality_leads": 1,
            "qualified_opportunities": 1,
            "deals_won": 1,
            "conversion_rate": Decimal("0.5"),
            "average_days_to_close": Decimal(10),
            "attributed_revenue": revenue[p],
        }
        for p in partners
    ]
    data = ReportData(
        as_of=None,
        period=None,
        program_currency="USD",
        partners={p: p for p in partners},
        performance=performance,
        attribution=attribution,
        data_driven=[],
    )
    plt = _pyplot()
    with matplotlib.rc_context(RC_PARAMS):
        fig = CHART_FUNCS["attribution"](plt, data)
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"P-{i}" for i in range(15, 25)]
        assert len(ax.patches) == 10 * 2
        assert "(top 10 of 25 partners by attributed revenue)" in ax.get_title()
        plt.close(fig)
        fig = CHART_FUNCS["performance"](plt, data)
        assert {line.get_label() for line in fig.axes[1].lines} == {f"P-{i}" for i in range(15, 25)}
        assert "(top 10 of 25 partners" in fig.axes[2].get_title()
        plt.close(fig)
