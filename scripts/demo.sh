#!/usr/bin/env bash
# Fresh checkout → sample exports → nightly runs → published payout batches, on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/referral-pipeline demo "$@"
