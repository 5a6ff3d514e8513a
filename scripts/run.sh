#!/usr/bin/env bash
# Set up a virtualenv with the app's requirements and serve the app the way Heroku does.
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
echo "serving on http://localhost:$PORT"
exec .venv/bin/gunicorn 'app:create_app()' --config gunicorn.conf.py --bind "0.0.0.0:$PORT"
