"""Value rules of the landing contract (SPEC section 4, "Values"), one type at a time."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from referral_pipeline.entities import entity
from referral_pipeline.landing.values import hash_ip, parse_row, parse_value

DEALS = entity("crm/deals")
KEY = "test-key"


def value(entity_path: str, column: str, raw):
    return parse_value(entity(entity_path).column(column), raw, ip_hash_key=KEY)


def reason(entity_path: str, column: str, raw) -> str:
    with pytest.raises(ValueError) as e:
        value(entity_path, column, raw)
    return str(e.value)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2025-01-07T20:39:17Z", datetime(2025, 1, 7, 20, 39, 17, tzinfo=UTC)),
        ("2025-01-07T20:39:17", datetime(2025, 1, 7, 20, 39, 17, tzinfo=UTC)),  # naive = UTC
        ("2025-01-07T12:39:17-08:00", datetime(2025, 1, 7, 20, 39, 17, tzinfo=UTC)),
        ("2025-02-01T01:50:00+02:00", datetime(2025, 1, 31, 23, 50, tzinfo=UTC)),  # crosses a month
        ("2025-01-08T05:39:17+09:00", datetime(2025, 1, 7, 20, 39, 17, tzinfo=UTC)),
        ("  2025-01-07 20:39:17.250+00:00 ", datetime(2025, 1, 7, 20, 39, 17, 250000, tzinfo=UTC)),
        ("2025-01-07", datetime(2025, 1, 7, tzinfo=UTC)),
    ],
)
def test_timestamps_are_utc(raw, expected):
    got = value("crm/deals", "created_at", raw)
    assert got == expected and got.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "raw", ["2025-02-30T10:00:00Z", "2025-13-45T25:00:00Z", "20250107T203917Z", "07/01/2025", "x"]
)
def test_bad_timestamps_are_rejected_naming_the_field(raw):
    assert reason("crm/deals", "created_at", raw).startswith("created_at: cannot parse")


def test_dates():
    assert value("finance/fx_rates", "rate_date", " 2025-01-05 ") == date(2025, 1, 5)
    for bad in ("2025-1-5", "20250105", "2025-01-05T00:00:00", "2025-02-29"):
        assert reason("finance/fx_rates", "rate_date", bad).startswith("rate_date: cannot parse")


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("TRUE", True), ("True", True), ("1", True), ("false", False), ("0", False)],
)
def test_bools(raw, expected):
    assert value("crm/deals", "is_won", raw) is expected


@pytest.mark.parametrize("raw", ["yes", "maybe", "2", "t"])
def test_bad_bools(raw):
    assert reason("crm/deals", "is_won", raw).startswith("is_won: cannot parse")


def test_decimals_keep_their_digits_and_honour_lower_bounds():
    assert value("crm/deals", "amount", "180000.00") == Decimal("180000.00")
    assert str(value("crm/deals", "amount", "+12.50")) == "12.50"
    assert value("crm/deals", "amount", "0") == Decimal(0)  # >= 0
    assert reason("crm/deals", "amount", "-500.00") == "amount: must be >= 0, got -500.00"
    assert reason("crm/deal_reversals", "amount", "0") == "amount: must be > 0, got 0"
    assert reason("finance/fx_rates", "rate", "0.0") == "rate: must be > 0, got 0.0"
    for bad in ("1e5", ".5", "5.", "1,000.00", "NaN", "12 50"):
        assert reason("crm/deals", "amount", bad).startswith("amount: cannot parse")


def test_integers():
    assert value("crm/companies", "employee_count", " 120 ") == 120
    assert value("crm/companies", "employee_count", "-3") == -3
    for bad in ("12.5", "1e3", "twelve", "１２"):  # full-width digits are not ASCII digits
        assert reason("crm/companies", "employee_count", bad).startswith("employee_count: cannot parse")


def test_enumerations_are_case_insensitive_and_stored_lower_case():
    assert value("crm/deals", "deal_type", "New_Business") == "new_business"
    assert (
        reason("crm/deals", "deal_type", "upsell")
        == "deal_type: 'upsell' is not one of new_business, expansion, renewal"
    )


def test_currency():
    assert value("crm/deals", "currency", "eur") == "EUR"
    for bad in ("EURO", "E1R", "€UR", "US"):
        assert reason("crm/deals", "currency", bad).startswith("currency: invalid currency")


def test_emails():
    assert value("crm/contacts", "email", "  Jane.Doe@WWW.Corp.COM ") == "jane.doe@www.corp.com"  # keeps www.
    for bad in ("no-at-sign.example.com", "user@localhost", "jane.doe@@corp.com", "a@b@c.com"):
        assert reason("crm/contacts", "email", bad).startswith("email: invalid email")


def test_domains_lose_one_leading_www():
    assert value("crm/companies", "company_domain", " WWW.Acme.IO ") == "acme.io"
    assert value("crm/companies", "company_domain", "www2.acme.io") == "www2.acme.io"
    assert value("crm/companies", "company_domain", "acme.www.io") == "acme.www.io"


def test_empty_is_null_required_rejects_and_defaults_apply():
    assert value("crm/deals", "closed_at", "   ") is None
    assert value("crm/deals", "deal_name", "") is None
    assert value("crm/deals", "deal_name", None) is None
    assert reason("crm/deals", "deal_id", "  ") == "deal_id: required field is missing"
    assert value("crm/deals", "is_deleted", "") is False
    assert value("crm/deals", "is_deleted", None) is False
    assert value("crm/deals", "is_deleted", "1") is True


def test_text_is_trimmed_and_nul_rejected():
    assert value("crm/deals", "deal_name", "  Big deal \t") == "Big deal"
    assert reason("crm/deals", "deal_name", "a\x00b") == "deal_name: contains a NUL character"


def test_ip_address_becomes_a_keyed_hash():
    expected = hmac.new(KEY.encode(), b"10.1.2.3", hashlib.sha256).hexdigest()
    assert value("links/clicks", "ip_address", " 10.1.2.3 ") == expected
    assert hash_ip("10.1.2.3", "other-key") != expected
    assert value("links/clicks", "ip_address", "") is None


def test_parse_row_reports_every_problem_in_column_order():
    values, errors = parse_row(
        DEALS, {"deal_id": "D-1", "deal_type": "upsell", "is_won": "maybe", "stage": "x"}, ip_hash_key=KEY
    )
    assert errors == [
        "deal_type: 'upsell' is not one of new_business, expansion, renewal",
        "amount: required field is missing",
        "currency: required field is missing",
        "created_at: required field is missing",
        "is_won: cannot parse 'maybe' as bool (true, false, 1 or 0)",
        "updated_at: required field is missing",
    ]
    assert len(values) == len(DEALS.columns)
