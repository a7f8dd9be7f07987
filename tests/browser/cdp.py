"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

Chromium reads commands from fd 3 and writes replies and events to fd 4, each a JSON
message ended by a NUL byte. That needs no websocket library and no debugging port. Only
what the dashboard test uses is here: one page, navigation, script evaluation, real mouse
clicks, JavaScript dialogs and screenshots.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1000",
    "--remote-debugging-pipe",
]


class CDPError(RuntimeError):
    """Chromium answered a command with an error, or did not answer in time."""


def _high_fd(fd: int) -> int:
    """A close-on-exec copy numbered 10 or more, so dup2 onto 3 and 4 cannot clobber it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """A headless Chromium process and its command pipe."""

    def __init__(self, binary: str, profile: Path, log: Path, timeout: float = 30) -> None:
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()
        to_child, from_child = _high_fd(to_child), _high_fd(from_child)
        argv = [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        actions = [
            (os.POSIX_SPAWN_DUP2, to_child, 3),
            (os.POSIX_SPAWN_DUP2, from_child, 4),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        # posix_spawn, unlike preexec_fn, is safe with threads in the test process.
        self.pid = os.posix_spawn(binary, argv, dict(os.environ), file_actions=actions)
        os.close(to_child)
        os.close(from_child)

    # ------------------------------------------------------------- messages
    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> int:
        """Send a command without waiting for its answer; returns its id."""
        message: dict[str, Any] = {"id": next(self._ids), "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return message["id"]

    def call(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Send a command and return its result (events that arrive meanwhile are kept)."""
        wanted = self.send(method, params, session)
        reply = self._read_until(lambda m: m.get("id") == wanted, f"the answer to {method}")
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def on(self, event: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Run `handler(params)` as soon as `event` arrives (e.g. to answer a dialog)."""
        self._handlers[event] = handler

    def wait_event(self, event: str, session: str = "") -> dict[str, Any]:
        def wanted(m: dict[str, Any]) -> bool:
            return m.get("method") == event and m.get("sessionId", "") == session

        for kept in self._events:
            if wanted(kept):
                self._events.remove(kept)
                return kept["params"]
        return self._read_until(wanted, event)["params"]

    def _read_until(self, wanted: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._next_message(deadline, what)
            if wanted(message):
                return message
            handler = self._handlers.get(message.get("method", ""))
            if handler is not None:
                handler(message.get("params", {}))
            elif "method" in message:
                self._events.append(message)

    def _next_message(self, deadline: float, what: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise CDPError(f"no {what} from Chromium within {self.timeout}s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise CDPError(f"Chromium exited while waiting for {what}")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    # ------------------------------------------------------------ lifecycle
    def new_page(self) -> Page:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"])
        page.call("Page.enable")
        page.call("Runtime.enable")
        return page

    def close(self) -> None:
        """Ask Chromium to quit; kill it if it does not within a few seconds."""
        with contextlib.suppress(OSError, CDPError):
            self.send("Browser.close")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        os.close(self._from_browser)


class Page:
    """One tab, driven through its flattened CDP session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.browser.call(method, params, self.session)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a script expression (promises awaited)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        answer = self.call("Runtime.evaluate", params)
        if "exceptionDetails" in answer:
            raise CDPError(f"{expression!r} threw: {answer['exceptionDetails'].get('text')}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15) -> Any:
        """Evaluate `expression` until it is truthy (page loads interrupt evaluations)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(CDPError):
                value = self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the first element matching `selector`."""
        box = self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        point = {"x": box["x"], "y": box["y"], "button": "left", "clickCount": 1}
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", **point})
        self.call("Input.dispatchMouseEvent", {"type": "mousePressed", **point})
        self.call("Input.dispatchMouseEvent", {"type": "mouseReleased", **point})

    def answer_prompts(self, text: str) -> list[str]:
        """Accept every JavaScript dialog with `text`; returns the messages seen."""
        seen: list[str] = []

        def accept(params: dict[str, Any]) -> None:
            seen.append(params.get("message", ""))
            answer = {"accept": True, "promptText": text}
            self.browser.send("Page.handleJavaScriptDialog", answer, self.session)

        self.browser.on("Page.javascriptDialogOpening", accept)
        return seen

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
