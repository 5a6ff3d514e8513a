"""gunicorn settings, read by the Procfile's command. Sized for a 512 MB Heroku dyno.

Two worker processes share the model pages loaded once in the master (preload_app), and each
runs a few threads so that one request's wait (a large decode's turn, I/O) does not hold a core.
In the Procfile, nginx reads each request whole before gunicorn sees it (config/nginx.conf.erb),
so slow clients never hold a thread. Memory measured by scripts/benchmark_app.py; see
docs/serving.md "Performance".
"""
import json
import logging
import os
import sys
from pathlib import Path

import gunicorn.util


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


# One OpenCV thread for the image work of a request (read when OpenCV first runs, so before the
# app loads): the workers use the cores, and work split over this machine's two virtual CPUs was
# at times 1.3-1.6x slower than on one (scripts/benchmark_app.py compares). onnxruntime's
# detector sessions are given one thread in recognition/faces.py.
os.environ.setdefault("OPENCV_FOR_THREADS_NUM", "1")

# Errors gunicorn answers itself, before the app sees the request; fixed messages, so that no
# client text is echoed.
SERVER_ERRORS = {
    400: "the request is malformed: its request line, a header or its chunked body cannot be parsed",
    414: "the URL is longer than the server accepts (4094 bytes)",
    431: "the request's headers are too many or too large",
}


def write_json_error(sock, status, reason, message):
    """gunicorn's own error answers (400, 414, 431, ...) in the API's JSON error shape instead of its HTML page."""
    body = json.dumps({"error": {"code": reason.lower().replace(" ", "_"),
                                 "message": SERVER_ERRORS.get(status, reason.lower())}})
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n")
    gunicorn.util.write_nonblock(sock, (head + body).encode("latin-1"))


# gunicorn has no setting for its error pages; its workers call gunicorn.util.write_error (27.0.1,
# pinned in requirements.txt), so this file, read by the master before it forks them, replaces it.
gunicorn.util.write_error = write_json_error

workers = positive_int("WEB_CONCURRENCY", 2)
threads = positive_int("GUNICORN_THREADS", 4)
worker_class = "gthread"
preload_app = True
timeout = 30
graceful_timeout = 10
max_requests = 2000          # recycle workers now and then, so slow leaks can never build up
max_requests_jitter = 200
accesslog = "-"
# Behind nginx the peer is its socket: log the client's address from X-Forwarded-For instead.
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def when_ready(server):
    """Behind nginx, tell its launcher that the app takes traffic: Heroku's buildpack (bin/start-nginx)
    starts nginx on $PORT once /tmp/app-initialized exists; scripts/serve.py passes its own path."""
    if any(address.startswith("unix:") for address in server.cfg.bind):
        Path(os.environ.get("FER_READY_FILE", "/tmp/app-initialized")).touch()


def worker_exit(server, worker):
    """End a worker without running C++ static destructors: onnxruntime, imported in the master
    (preload_app), starts a thread there that a forked worker does not have, and its destructor's
    join then aborts the worker (SIGABRT, "std::system_error") at every stop or recycle. The exit
    status gunicorn gave the worker is kept; Python's own buffers are flushed first."""
    error = sys.exc_info()[1]  # the SystemExit (or other error) the worker is ending with, if any
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else int(error.code is not None)
    else:
        code = int(error is not None)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
