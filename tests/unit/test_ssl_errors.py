"""SSL that cannot be verified is said as such, never as an unreachable database: a
server whose certificate the URL's sslrootcert does not vouch for (it answered), and
verify-full with no certificate authority to check against."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskstore import TaskStore
from taskstore.errors import DatabaseUnavailable


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate to serve")
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    request = (
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        f"/CN={name}",
    )
    made = ("-keyout", str(key), "-out", str(cert))
    subprocess.run(["openssl", *request, *made], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A port that answers PostgreSQL's SSL request and then shakes hands as `server`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path, "server"))
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with client:
                client.recv(8)  # SSLRequest
                client.sendall(b"S")
                try:
                    with context.wrap_socket(client, server_side=True) as tls:
                        tls.recv(100)
                except (OSError, ssl.SSLError):
                    pass

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


async def test_a_server_certificate_not_signed_by_sslrootcert_fails_verification(
    tls_server: int, tmp_path: Path
) -> None:
    other_ca, _ = _self_signed(tmp_path, "other-ca")
    url = f"postgresql://u@127.0.0.1:{tls_server}/x?sslmode=verify-full&sslrootcert={other_ca}"
    message = await _refusal(url)
    assert "did not pass SSL verification: [SSL: CERTIFICATE_VERIFY_FAILED]" in message


async def test_verify_full_without_a_root_certificate_says_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq's default is ~/.postgresql/root.crt; without it nothing can be verified,
    and no server is asked (so none is needed here)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    message = await _refusal("postgresql://u@127.0.0.1:9/x?sslmode=verify-full")
    assert message.startswith("cannot verify the server at postgresql+asyncpg://u@127.0.0.1:9/x")
    assert message.endswith("in the URL: sslrootcert=/path/to/ca.pem)")


async def _refusal(url: str) -> str:
    """The one-line error of opening a store on `url` (never about reachability)."""
    store = TaskStore.from_url(url)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await store.open()
    finally:
        await store.close()
    message = str(caught.value)
    assert "cannot reach" not in message and "\n" not in message
    return message
