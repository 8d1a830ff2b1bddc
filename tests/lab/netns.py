"""Enter a network namespace for one socket: the lab's listening sockets live inside the lab
while the process that owns them stays on the host (cgroups and the route out stay its own).

``setns(2)`` changes only the calling thread's namespace, so each use switches in, creates the
socket, and switches back before anything else runs on the thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)} (the lab harness needs root)")


@contextlib.contextmanager
def inside(netns: str) -> Iterator[None]:
    """Run the ``with`` body in ``/run/netns/<netns>``, then return to where the thread was."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)
