#!/usr/bin/env bash
# The test suite: lint, then pytest against the embedded PostgreSQL and, when one answers on
# 127.0.0.1:5432 (or REFERRAL_TEST_SERVERS names servers), against that server too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. .venv/bin/activate
echo "== ruff"
ruff check .
ruff format --check .
servers=${REFERRAL_TEST_SERVERS:-}
if [ -z "$servers" ]; then
  servers=embedded
  if python -c 'import psycopg; psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()' 2>/dev/null; then
    servers="$servers postgresql://postgres@127.0.0.1:5432/postgres"
  else
    echo "note: no PostgreSQL answers on 127.0.0.1:5432; testing on the embedded server only"
  fi
fi
only_once=()
for server in $servers; do
  echo "== pytest against ${server}"
  base=$(mktemp -d -t referral-pytest-XXXXXX)  # a private temp root: concurrent pytest sessions never prune it
  REFERRAL_TEST_SERVER=$server python -m pytest -p no:cacheprovider --basetemp="$base" "${only_once[@]}" "$@"
  rm -rf "$base"
  only_once=(-m "not once")  # tests that do not use the server (e.g. the installed wheel) run on the first one
done
