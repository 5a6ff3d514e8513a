"""Limits that hold across a server's worker processes."""
import multiprocessing
from contextlib import contextmanager

from web.errors import RequestError


class LargeDecodes:
    """At most `slots` large images decoded at once by all the worker processes together.

    Made in create_app, which gunicorn runs once before it forks the workers (preload_app), so
    that they share one semaphore. A request that waits longer than wait_s gets a 503.
    """

    def __init__(self, slots, wait_s):
        self._slots = multiprocessing.BoundedSemaphore(slots)
        self.wait_s = wait_s

    @contextmanager
    def __call__(self):
        if not self._slots.acquire(timeout=self.wait_s):
            raise RequestError(503, "server_busy", "the server is decoding other large images; "
                               "send this one again in a few seconds, or a smaller one")
        try:
            yield
        finally:
            self._slots.release()
