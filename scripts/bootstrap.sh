#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with its pinned dependencies. Idempotent and quick when
# nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing dependencies into .venv (first time: a minute or two)..."
  # -qq: only errors; if the install fails, rerun it by hand without -qq to see everything.
  .venv/bin/python -m pip install -qq --upgrade pip
  .venv/bin/python -m pip install -qq -c constraints.txt -e '.[dev]' || {
    echo "error: installing into .venv failed; rerun: .venv/bin/python -m pip install -c constraints.txt -e '.[dev]'" >&2
    exit 1
  }
  echo "$want" > "$stamp"
  echo "installed"
fi
