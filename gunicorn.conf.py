"""gunicorn settings, read by the Procfile's command. Sized for a 512 MB Heroku dyno.

Two worker processes share the model pages loaded once in the master (preload_app), and each
runs a few threads so that a slow upload does not hold a core. Memory measured by
scripts/benchmark_app.py; see README "Performance".
"""
import os
import sys


def positive_int(variable, default):
    """A count from the environment; a bad one stops start-up with one line that names it."""
    text = os.environ.get(variable, str(default))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        sys.exit(f"error: cannot start: {variable} is {text!r}, not a whole number of at least 1")
    return value


workers = positive_int("WEB_CONCURRENCY", 2)
threads = positive_int("GUNICORN_THREADS", 4)
worker_class = "gthread"
preload_app = True
timeout = 30
graceful_timeout = 10
max_requests = 2000          # recycle workers now and then, so slow leaks can never build up
max_requests_jitter = 200
accesslog = "-"
