#!/usr/bin/env bash
# Set up a virtualenv with the app's requirements and serve the app the way Heroku does:
# nginx on $PORT in front of gunicorn (the Procfile; scripts/serve.py plays the buildpack's part).
#   bash scripts/run.sh            # then open http://localhost:8000
#   PORT=5000 bash scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# An index that cannot be reached (PyTorch's CPU index, on a machine without internet) should
# fail fast and fall through to the next source instead of being retried for minutes.
export PIP_RETRIES="${PIP_RETRIES:-0}" PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
export PORT="${PORT:-8000}"
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && command -v apt-get >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nginx-light >/dev/null; } || true
fi
echo "serving on http://localhost:$PORT"
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
    exec .venv/bin/python -m scripts.serve
fi
echo "warning: nginx is not installed, so gunicorn serves alone: slow clients can hold its threads" >&2
exec .venv/bin/gunicorn 'app:create_app()' --config gunicorn.conf.py --bind "0.0.0.0:$PORT"
