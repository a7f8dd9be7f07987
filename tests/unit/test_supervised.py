"""A worker tells whether its supervisor has ended, through a pidfd or by its pid."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.supervised import Watched


@pytest.fixture(params=["pidfd", "kill"])
def without_pidfd(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "kill":
        monkeypatch.delattr(os, "pidfd_open", raising=False)


def test_a_live_process_is_not_gone_and_an_ended_one_is(without_pidfd: None) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    watched = Watched(child.pid)
    try:
        assert not watched.gone()
        child.stdin.close()
        child.wait(10)
        assert watched.gone()
    finally:
        watched.close()


def test_a_pid_that_has_already_ended_is_gone(without_pidfd: None) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    assert Watched(child.pid).gone()
