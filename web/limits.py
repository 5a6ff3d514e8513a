"""Limits that hold across a server's worker processes."""
import ctypes
import ctypes.util
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
            give_back_memory()
            self._slots.release()


# glibc keeps memory freed by a large decode (Pillow allocates images in 16 MB blocks, below its
# mmap threshold) for the process's next allocations; two workers that decoded in turn then hold
# both peaks at once. malloc_trim returns it to the system; other C libraries have no such call.
LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)


def give_back_memory():
    """Return the memory the process has freed to the operating system, where the C library can."""
    trim = getattr(LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
