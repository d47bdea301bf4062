"""Keep the C heap from shrinking and re-growing between the network kernels' calls (issue 15).

The network kernels allocate NumPy temporaries of a few hundred KiB to a few MiB per call
(``B x P`` rows at the benchmark's size). glibc's ``malloc`` returns the top of the heap to the
system when a call frees them and takes it back, page by page, on the next call: about 2000
page faults per call of the three directions of the 1-40-40-1 network, about half its time
(``tests/test_factored.py`` counts them with ``getrusage``, with the pad and without it). A top pad of :data:`TOP_PAD` bytes keeps
that memory in the process, so the pages are faulted once: the in-code equivalent of the
environment variable ``MALLOC_TOP_PAD_``, which users should not need to know about.

:func:`steady` is called by the kernels' constructors. It is idempotent, does nothing but on
glibc, and leaves a pad the user already chose (``MALLOC_TOP_PAD_`` set) alone. Its cost: the
process keeps up to :data:`TOP_PAD` bytes of freed heap instead of returning them.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: The pad: larger than the kernels' per-call temporaries below the factored layout's range
#: (at ``P`` from :data:`hfmaml_core.layouts.FACTORED_FROM` on, the factored kernels hold no
#: ``B x P`` array).
TOP_PAD: int = 64 * 2**20

_M_TOP_PAD = -2  # glibc's malloc.h
_done: list[bool] = []


def steady() -> bool:
    """Set glibc's ``M_TOP_PAD`` to :data:`TOP_PAD` once per process; ``True`` if it is set."""
    if _done:
        return _done[0]
    ok = False
    if sys.platform.startswith("linux") and "MALLOC_TOP_PAD_" not in os.environ:
        try:
            libc = ctypes.CDLL("libc.so.6")
            ok = bool(libc.mallopt(_M_TOP_PAD, TOP_PAD))
        except (OSError, AttributeError):  # not glibc (musl has no mallopt of this kind)
            ok = False
    _done.append(ok)
    return ok
