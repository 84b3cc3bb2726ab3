"""The event loop a run goes through: uvloop's where it is installed, else asyncio's.

A run at zero latency is bound by one core: aiohttp and the event loop are about half of
its main thread's CPU. uvloop (libuv, in C) runs the same loop for less. Measured on the
2-core machine against the mock server, 10,000 calls at concurrency 64, medians of 5
interleaved rounds: the bare aiohttp loop 1.14 -> 0.91 s as a whole process, `promptlab
run` as a whole command 2.91 -> 2.78 s (benchmarks/README.md).

``PROMPTLAB_EVENT_LOOP`` chooses: ``auto`` (the default: uvloop when it imports),
``uvloop`` (required: a user error without it) or ``asyncio``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from promptlab.errors import UserError

__all__ = ["CHOICES", "loop_factory"]

CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What `asyncio.Runner` makes its loop with (None: asyncio's own)."""
    choice = os.environ.get("PROMPTLAB_EVENT_LOOP", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise UserError(f"PROMPTLAB_EVENT_LOOP: {choice!r} is not one of "
                        f"{', '.join(CHOICES)}; unset it or pick one")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise UserError("PROMPTLAB_EVENT_LOOP=uvloop: uvloop is not installed; "
                            "pip install uvloop, or unset PROMPTLAB_EVENT_LOOP") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
