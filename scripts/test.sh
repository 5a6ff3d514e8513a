#!/usr/bin/env bash
# Set up everything the tests need (virtualenv, Python packages, Debian's Chromium and nginx) and run them.
#   bash scripts/test.sh           # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_RETRIES="${PIP_RETRIES:-0}" PIP_DISABLE_PIP_VERSION_CHECK=1
if ! command -v chromium >/dev/null || ! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then
    # The browser tests drive Debian's Chromium (Playwright's own browser download cannot work
    # offline); the server tests run nginx in front of gunicorn, as the Procfile does.
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium nginx-light >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
