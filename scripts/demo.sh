#!/usr/bin/env bash
# Sets up a virtualenv in .venv with cachectl, then runs `cachectl demo`: a throwaway Redis on a
# free port, the real commands against it, and everything cleaned up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/cachectl demo "$@"
