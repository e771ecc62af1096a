#!/usr/bin/env bash
# The test suite: lint, then pytest against the embedded PostgreSQL and, when one answers on
# 127.0.0.1:5432 (or REFERRAL_TEST_SERVERS names servers), against that server too. The servers' sessions run
# side by side (each in its own databases, data folder and temp root), their lines prefixed with the server;
# REFERRAL_TEST_SEQUENTIAL=1 runs them one after the other instead.
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

run_one() {  # run_one SERVER [pytest args...]: one pytest session against SERVER, in a private temp root
  local server=$1; shift
  local base
  base=$(mktemp -d -t referral-pytest-XXXXXX)  # concurrent pytest sessions never prune each other's folders
  local rc=0
  REFERRAL_TEST_SERVER=$server python -m pytest -p no:cacheprovider --durations=15 --basetemp="$base" "$@" || rc=$?
  rm -rf "$base"
  return $rc
}

only_once=()
pids=()
labels=()
for server in $servers; do
  label=$(echo "$server" | sed -E 's#^postgresql://([^@]*@)?##; s#/.*##')
  echo "== pytest against ${label}"
  if [ "${REFERRAL_TEST_SEQUENTIAL:-}" = 1 ] || [ "$(echo $servers | wc -w)" = 1 ]; then
    run_one "$server" "${only_once[@]}" "$@"
  else
    ( run_one "$server" "${only_once[@]}" "$@" 2>&1 | sed -u "s#^#[${label}] #"; exit "${PIPESTATUS[0]}" ) &
    pids+=($!)
    labels+=("$label")
  fi
  only_once=(-m "not once")  # tests that do not use the server (e.g. the installed wheel) run on the first one
done
failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${labels[$i]}")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED against: ${failed[*]} (the lines prefixed with that server above say which tests)" >&2
  exit 1
fi
echo "== all test sessions passed"
