"""The garbage collector around a command's start-up.

A command's start-up imports SQLAlchemy, the store and the worker: tens of thousands of
objects that live as long as the process. The collector's passes over them while they are
made cost about a tenth of a worker's start-up and find nothing to free. So a command
line pauses it when it starts (`pause`) and resumes it once its start-up is over
(`resume`: what the start-up made is frozen out of every later collection first). A
long-running command (the worker, the dashboard, the supervisor) must resume before it
settles into its run; a short one resumes when it returns.
"""

from __future__ import annotations

import gc

_paused = False  # by `pause`, and not resumed since


def pause() -> None:
    """Stop collecting until `resume` (no-op if the collector is off already)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume(*, freeze: bool = True) -> None:
    """Start-up is over: freeze what exists now (it lives as long as the process, and the
    collector need not walk it again), then collect again if `pause` stopped it."""
    global _paused
    if freeze:
        gc.freeze()
    if _paused:
        _paused = False
        gc.enable()
