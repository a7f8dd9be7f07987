"""`@task` checks the handler's signature when it is registered, not when it first runs:
the context comes first (positionally), the payload as keyword arguments."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pytest

from taskstore import InvalidInput
from worker import RegistrationError, Registry, task

if TYPE_CHECKING:
    from worker import TaskContext  # only for type checkers: must not break the check


def register(fn: Any, **options: Any) -> Any:
    return task(registry=Registry(), **({"name": "sig.handler"} | options))(fn)


def no_context() -> None: ...


def context_by_keyword_only(*, ctx: Any) -> None: ...


def only_kwargs(**payload: Any) -> None: ...


def positional_only_payload(ctx: Any, video_id: str, /) -> None: ...


async def payload_first(video_id: str | None, seconds: int = 0) -> None: ...  # no ctx


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        (no_context, "no_context() must take the context as its first positional parameter"),
        (
            context_by_keyword_only,
            "context_by_keyword_only() must take the context as its first positional parameter",
        ),
        (only_kwargs, "only_kwargs() must take the context as its first positional parameter"),
        (
            positional_only_payload,
            "positional_only_payload() has positional-only parameter 'video_id', but the "
            "payload arrives as keyword arguments",
        ),
        (
            payload_first,
            "payload_first() must take the context first, but its first parameter is "
            "video_id: str or None; add one before it: (ctx, video_id, ...)",
        ),
    ],
)
def test_a_handler_that_cannot_run_as_a_task_is_refused_at_registration(
    handler: Any, problem: str
) -> None:
    with pytest.raises(RegistrationError) as refused:
        register(handler)
    message = str(refused.value)
    assert message == f"cannot register sig.handler: {problem}"
    assert "\n" not in message and isinstance(refused.value, InvalidInput)


def test_a_refused_handler_is_not_registered() -> None:
    registry = Registry()
    with pytest.raises(RegistrationError):
        task(name="sig.none", registry=registry)(no_context)
    assert registry.get("sig.none") is None


def test_an_uninspectable_callable_is_refused_naming_it() -> None:
    with pytest.raises(RegistrationError, match="cannot read the signature of"):
        register(type)


async def context_and_payload(ctx: TaskContext, video_id: str, lang: str | None = None) -> None:
    """A forward reference to a name imported only for type checkers is fine."""


def context_positional_only(ctx: Any, /, video_id: str) -> None: ...


def star_args_context(*args: Any, **kwargs: Any) -> None: ...


def keyword_only_payload(ctx: Any, *, video_id: str) -> None: ...


class CallableHandler:
    def __call__(self, ctx: Any, n: int) -> int:
        return n


@pytest.mark.parametrize(
    "handler",
    [
        context_and_payload,
        context_positional_only,
        star_args_context,
        keyword_only_payload,
        CallableHandler(),
        functools.partial(lambda ctx, a, b: a + b, b=2),
        lambda ctx: None,
    ],
)
def test_handlers_taking_the_context_first_and_the_payload_by_keyword_are_accepted(
    handler: Any,
) -> None:
    assert register(handler, name="sig.ok").fn is handler


def test_a_periodic_handler_must_still_take_only_the_context() -> None:
    with pytest.raises(RegistrationError, match="must take only the context"):
        register(context_and_payload, cron="* * * * *")
    assert register(lambda ctx, n=1: None, cron="* * * * *").cron == "* * * * *"


def test_a_context_annotated_or_left_bare_is_taken_as_the_context() -> None:
    async def annotated(ctx: TaskContext, n: int) -> None: ...

    async def bare(context, n: int) -> None: ...  # type: ignore[no-untyped-def]

    async def loose(ctx: Any) -> None: ...

    for handler in (annotated, bare, loose):
        assert register(handler).name == "sig.handler"
