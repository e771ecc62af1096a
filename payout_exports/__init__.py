"""Payout batches (see docs/rules.md, Payout batches): the ledger, deterministic files, publishing and
reconciliation.

Plain Python on purpose: the orchestration drives it, finance tools and tests call it directly.

- `publish_due(url, run_date, export_uri, code_version=...)`: the whole payout step of a nightly run;
- `record_due_batches` / `publish_recorded_batches`: the same in two steps (ledger, then files);
- `publish_batch`: finish (after a crash) or copy a recorded batch, byte-identical;
- `reconcile_ledger`, `reconcile_batch`, `verify_published`: checks that return a list of problems;
- `show_batch`: the finance summary of a period;
- `approve_batch`, `reject_batch`, `batch_text`: the sign-off of a batch under `batch_approval: required`
  (docs/finance.md, Signing off a batch).
"""

from .ledger import (
    DEFAULT_INPUTS,
    BatchResult,
    Inputs,
    PayoutError,
    ensure_ledger_schema,
    reconcile_ledger,
    record_due_batches,
)
from .publish import (
    approve_batch,
    batch_text,
    publish_batch,
    publish_due,
    publish_recorded_batches,
    reconcile_batch,
    reject_batch,
    show_batch,
    verify_published,
)
from .render import render_batch
from .store import LocalStore, PublishConflict, S3Store, open_store

__all__ = [
    "DEFAULT_INPUTS",
    "BatchResult",
    "Inputs",
    "LocalStore",
    "PayoutError",
    "PublishConflict",
    "S3Store",
    "approve_batch",
    "batch_text",
    "ensure_ledger_schema",
    "open_store",
    "publish_batch",
    "publish_due",
    "publish_recorded_batches",
    "reconcile_batch",
    "reconcile_ledger",
    "record_due_batches",
    "reject_batch",
    "render_batch",
    "show_batch",
    "verify_published",
]
