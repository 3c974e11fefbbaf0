#!/usr/bin/env bash
# The README's first command. Sets up a virtualenv in .venv with cachectl (and its `demo` extra:
# the in-process Redis used when there is no redis-server), then runs `cachectl demo`: a
# throwaway Redis and a sample API on free ports, the real commands against them, and everything
# stopped and removed afterwards. Never touches a Redis you already run.
#
# Usage: ./scripts/demo.sh [cachectl demo options: --json, --keep, --redis in-process...]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "demo.sh: $*" >&2; }
root_on_debian() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null && apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v python3 >/dev/null 2>&1; then
  say "python3 not found: install Python 3.10 or later"
  exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  say "cachectl needs Python 3.10 or later, this is $(python3 --version 2>&1)"
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if root_on_debian; then
    say "installing redis-server (apt-get)"
    apt_install redis-server || say "could not install redis-server: the demo uses an in-process Redis"
  else
    say "no redis-server on PATH: the demo uses an in-process Redis (apt-get install redis-server for the real one)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    if root_on_debian; then
      say "installing python3-venv (apt-get)"
      apt_install python3-venv
      python3 -m venv .venv
    else
      say "python3 -m venv failed: install the venv module (Debian/Ubuntu: apt-get install python3-venv)"
      exit 1
    fi
  fi
fi
say "installing cachectl into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[demo]'
exec .venv/bin/cachectl demo "$@"
