"""PostgreSQL connections get keepalives and a TCP user timeout, set from the URL."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy.engine import make_url

from taskstore.backends.pg_socket import DEFAULTS, apply, tcp_options
from taskstore.errors import ConfigError
from taskstore.settings import normalize_url

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's"
)


def test_a_tcp_socket_gets_the_defaults() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        apply(sock, tcp_options(make_url("postgresql://h/db")))
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 30_000


def test_the_url_sets_them_with_libpq_names_and_keepalives_0_leaves_the_socket_alone() -> None:
    url = normalize_url("postgresql://h/db?tcp_user_timeout=2500&keepalives_idle=3")
    assert tcp_options(url) == {**DEFAULTS, "tcp_user_timeout": 2500, "keepalives_idle": 3}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        apply(sock, tcp_options(make_url("postgresql://h/db?keepalives=0")))
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


@pytest.mark.parametrize("value", ["soon", "-1", "1.5", "128", "4294967296"])
def test_a_value_that_is_not_a_whole_number_in_range_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match=r"keepalives_count in the database URL .* 0 to 127"):
        tcp_options(make_url(f"postgresql://h/db?keepalives_count={value}"))


def test_the_kernels_largest_values_are_taken_and_one_more_is_refused() -> None:
    url = make_url("postgresql://h/db?keepalives_idle=32767&tcp_user_timeout=2147483647")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        apply(sock, tcp_options(url))  # the kernel takes them
    for option in ("keepalives_idle=32768", "tcp_user_timeout=2147483648"):
        with pytest.raises(ConfigError, match=option.split("=")[0]):
            tcp_options(make_url(f"postgresql://h/db?{option}"))


def test_an_option_given_twice_is_named() -> None:
    with pytest.raises(ConfigError, match="keepalives_idle is given twice"):
        tcp_options(make_url("postgresql://h/db?keepalives_idle=10&keepalives_idle=20"))
