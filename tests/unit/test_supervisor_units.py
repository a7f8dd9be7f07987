"""The supervisor's loop pieces that need no worker processes: what it says when the
zygote it forks workers from has ended."""

from __future__ import annotations

from typing import Any

import pytest

from worker.supervisor import _exits
from worker.zygote import ZygoteGone


class _EndedZygote:
    closed = False

    def exits(self) -> dict[int, int]:
        raise ZygoteGone("the zygote ended")

    def close(self) -> None:
        self.closed = True


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, event: str, **_: Any) -> None:
        self.warnings.append(event)


@pytest.mark.parametrize(("stopping", "warned"), [(False, 1), (True, 0)])
def test_a_zygote_that_ends_is_a_warning_except_during_a_stop(stopping: bool, warned: int) -> None:
    zygote, log = _EndedZygote(), _Log()
    exits, left = _exits(zygote, [], log, stopping=stopping)  # type: ignore[arg-type]
    assert (exits, left, zygote.closed) == ({}, None, True)
    assert len(log.warnings) == warned
