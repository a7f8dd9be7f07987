"""The settings chain and URL handling, no database needed."""

from __future__ import annotations

import math
import re

import pytest

from taskstore import ConfigError, Settings
from taskstore.formatting import parse_duration
from taskstore.settings import normalize_url, safe_url


def test_explicit_url_wins_over_environment() -> None:
    env = {"TASKSTORE_DATABASE_URL": "sqlite:///env.db"}
    assert Settings.from_env("sqlite:///flag.db", env).database_url.database == "flag.db"


def test_environment_url_wins_over_backend_fields() -> None:
    env = {"TASKSTORE_DATABASE_URL": "postgresql://a@h/x", "TASKSTORE_DATABASE_BACKEND": "sqlite"}
    assert Settings.from_env(None, env).database_url.drivername == "postgresql+asyncpg"


def test_postgres_backend_fields_build_the_url() -> None:
    env = {
        "TASKSTORE_DATABASE_BACKEND": "postgres",
        "TASKSTORE_POSTGRES_HOST": "db",
        "TASKSTORE_POSTGRES_PORT": "6543",
        "TASKSTORE_POSTGRES_USER": "u",
        "TASKSTORE_POSTGRES_PASSWORD": "pw",
        "TASKSTORE_POSTGRES_DB": "jobs",
    }
    url = Settings.from_env(None, env).database_url
    assert (url.drivername, url.host, url.port, url.username, url.database) == (
        "postgresql+asyncpg",
        "db",
        6543,
        "u",
        "jobs",
    )
    assert "pw" not in Settings.from_env(None, env).safe_url


def test_default_is_sqlite_under_xdg_data_home(tmp_path) -> None:
    url = Settings.from_env(None, {"XDG_DATA_HOME": str(tmp_path)}).database_url
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "taskstore" / "taskstore.db")


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://u@h/d", "postgresql+asyncpg"),
        ("postgres://u@h/d", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
    ],
)
def test_plain_urls_map_to_async_drivers(raw: str, driver: str) -> None:
    assert normalize_url(raw).drivername == driver


@pytest.mark.parametrize("raw", ["nonsense", "mysql://u:pw@h/d", "postgresql://u:pw@h"])
def test_bad_urls_raise_config_error_without_the_password(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_url(raw)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "meant"),
    [("sqlite://x.db", "sqlite:///x.db"), ("sqlite+aiosqlite://data/x.db", "sqlite:///data/x.db")],
)
def test_an_sqlite_url_with_two_slashes_names_the_url_it_meant(raw: str, meant: str) -> None:
    """SQLAlchemy reads the file name as a host and fails later with "Invalid SQLite URL"."""
    with pytest.raises(ConfigError, match=f"follows three slashes, {meant} "):
        normalize_url(raw)


def test_safe_url_masks_the_password() -> None:
    assert safe_url("postgresql://u:hunter2@h/d") == "postgresql://u:***@h/d"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TASKSTORE_POOL_SIZE", "many"),
        ("TASKSTORE_DATABASE_ECHO", "maybe"),
        ("TASKSTORE_DATABASE_BACKEND", "oracle"),
    ],
)
def test_malformed_settings_name_the_variable(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Settings.from_env(None, {key: value})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("TASKSTORE_MAX_PAYLOAD_BYTES", "-1", "must be at least 2, got -1"),
        ("TASKSTORE_POOL_SIZE", "0", "must be at least 1, got 0"),
        ("TASKSTORE_POOL_MAX_OVERFLOW", "-5", "must be at least 0, got -5"),
        ("TASKSTORE_SQLITE_BUSY_TIMEOUT_MS", "-1", "must be at least 0, got -1"),
    ],
)
def test_settings_out_of_range_are_refused_naming_the_variable(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"{key} {message}"):
        Settings.from_env(None, {key: value})


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("timeout=abc", "timeout in the database URL must be seconds above 0, got 'abc'"),
        ("command_timeout=0", "command_timeout in the database URL must be seconds above 0"),
        ("connect_timeout=0", "connect_timeout in the database URL must be seconds above 0"),
        ("connect_timeout=-5", "connect_timeout in the database URL must be seconds above 0"),
        ("statement_cache_size=abc", "statement_cache_size in the database URL must be a whole"),
        ("max_cached_statement_lifetime=1.5", "must be a whole number, got '1.5'"),
        ("port=abc", "invalid port 'abc' in the database URL"),
        ("target_session_attrs=bogus", "target_session_attrs must be one of any, primary"),
        ("timeout=1&timeout=2", "the database URL gives timeout more than once"),
    ],
)
def test_a_bad_value_of_a_url_option_is_a_config_error_naming_it(option: str, message: str) -> None:
    """Not the driver's bare TypeError at every connect (exit 1: restarted for good)."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(f"postgresql://u@h/db?{option}")
    good = "timeout=5&statement_cache_size=0&port=5433&target_session_attrs=read-write"
    assert Settings.from_env(f"postgresql://u@h/db?{good}").database_url.query["port"] == "5433"


def test_a_password_in_the_urls_query_is_masked() -> None:
    shown = safe_url("postgresql://u@h/db?password=s3cret&application_name=a")
    assert "s3cret" not in shown and "application_name=a" in shown
    with pytest.raises(ConfigError) as told:
        Settings.from_env("postgresql://u@h/db?password=s3cret&sslmod=x")
    assert "s3cret" not in str(told.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TASKSTORE_POSTGRES_PORT": "99999"}, "TASKSTORE_POSTGRES_PORT must be from 1 to 65535"),
        ({"TASKSTORE_POSTGRES_PORT": "0"}, "TASKSTORE_POSTGRES_PORT must be from 1 to 65535"),
        ({"TASKSTORE_POSTGRES_DB": ""}, "TASKSTORE_POSTGRES_DB is set but empty"),
    ],
)
def test_bad_postgres_fields_name_their_variable(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(None, {"TASKSTORE_DATABASE_BACKEND": "postgres", **env})


def test_the_listen_url_is_checked_as_a_postgresql_url_and_named() -> None:
    with pytest.raises(ConfigError, match="TASKSTORE_LISTEN_URL: invalid database URL"):
        Settings.from_env("postgresql://u@h/db", {"TASKSTORE_LISTEN_URL": "nonsense"})
    with pytest.raises(ConfigError, match="TASKSTORE_LISTEN_URL must be a postgresql:// URL"):
        Settings.from_env("postgresql://u@h/db", {"TASKSTORE_LISTEN_URL": "sqlite:///x.db"})


def test_an_empty_variable_means_its_default_and_a_grace_of_0_means_never() -> None:
    """KEY= in an env file (an unset shell variable) must not turn a setting off."""
    empty = Settings.from_env(
        "sqlite:///x.db", {"TASKSTORE_AUTO_MIGRATE": "", "TASKSTORE_POOL_PRE_PING": ""}
    )
    assert (empty.auto_migrate, empty.pool_pre_ping) == (True, True)
    for never in ("0", "never", "off"):
        grace = Settings.from_env("sqlite:///x.db", {"TASKSTORE_UNSERVED_GRACE": never})
        assert grace.unserved_grace_seconds == math.inf


def test_libpq_sslmode_becomes_asyncpgs_ssl_and_unknown_options_are_refused() -> None:
    url = Settings.from_env("postgresql://u@h/db?sslmode=require&application_name=a").database_url
    assert dict(url.query) == {"ssl": "require", "application_name": "a"}
    with pytest.raises(ConfigError, match="unknown option 'sslmod' in the database URL"):
        Settings.from_env("postgresql://u@h/db?sslmod=require")
    with pytest.raises(ConfigError, match="sslmode must be one of disable, allow"):
        Settings.from_env("postgresql://u@h/db?sslmode=on")


def test_libpq_server_options_and_ssl_files_reach_asyncpg_as_a_connection_string() -> None:
    from urllib.parse import parse_qs, urlsplit

    from taskstore.backends.postgres import connect_args

    query = "options=-c%20search_path%3Dtenant&sslmode=verify-full&sslrootcert=/etc/ca.pem"
    url = Settings.from_env(f"postgresql://u@h/db?{query}").database_url
    dsn = urlsplit(connect_args(url)["dsn"])
    assert parse_qs(dsn.query) == {
        "options": ["-c search_path=tenant"],
        "sslrootcert": ["/etc/ca.pem"],
    }
    assert dsn.netloc == "" and url.query["ssl"] == "verify-full"  # host and mode: as given
    twice = Settings.from_env("postgresql://u@h/db?options=-c%20a%3D1&options=-c%20b%3D2")
    with pytest.raises(ConfigError, match=r"^options is given more than once in the database URL$"):
        connect_args(twice.database_url)


def test_several_hosts_are_taken_in_the_query_and_libpqs_comma_list_is_pointed_there() -> None:
    query = "host=h1:5432&host=h2:5433&target_session_attrs=read-write"
    url = Settings.from_env(f"postgresql://u@/db?{query}").database_url
    assert url.query["host"] == ("h1:5432", "h2:5433")
    with pytest.raises(ConfigError, match=r"^several hosts go in the database URL's query, one"):
        Settings.from_env("postgresql://u@h1:5432,h2:5433/db")


def test_an_unescaped_at_sign_in_a_password_is_named_without_showing_the_password() -> None:
    with pytest.raises(ConfigError) as told:
        Settings.from_env("postgresql://app:s3cr@t@db.example/shop")
    assert str(told.value).startswith("the database URL has an '@' in its password")
    assert "t@db" not in str(told.value) and "s3cr" not in str(told.value)
    url = Settings.from_env("postgresql://app:s3cr%40t@db.example/shop").database_url
    assert (url.password, url.host) == ("s3cr@t", "db.example")


def test_an_ssl_key_password_in_the_url_is_masked_like_the_password() -> None:
    shown = safe_url("postgresql://u:secret@h/db?sslkey=/k.pem&sslpassword=hunter2")
    assert "secret" not in shown and "hunter2" not in shown and "sslkey=%2Fk.pem" in shown


def test_every_tunable_reads_its_environment_variable() -> None:
    env = {
        "TASKSTORE_DATABASE_URL": "sqlite:///x.db",
        "TASKSTORE_DATABASE_ECHO": "1",
        "TASKSTORE_SQLITE_JOURNAL_MODE": "DELETE",
        "TASKSTORE_SQLITE_SYNCHRONOUS": "FULL",
        "TASKSTORE_SQLITE_BUSY_TIMEOUT_MS": "5",
        "TASKSTORE_SQLITE_CACHE_SIZE": "-1",
        "TASKSTORE_POOL_SIZE": "7",
        "TASKSTORE_POOL_MAX_OVERFLOW": "3",
        "TASKSTORE_POOL_PRE_PING": "0",
        "TASKSTORE_AUTO_MIGRATE": "false",
        "TASKSTORE_MAX_PAYLOAD_BYTES": "10",
        "TASKSTORE_RETENTION": "12h",
    }
    s = Settings.from_env(None, env)
    assert (
        s.echo,
        s.sqlite_journal_mode,
        s.sqlite_synchronous,
        s.sqlite_busy_timeout_ms,
        s.sqlite_cache_size,
        s.pool_size,
        s.max_overflow,
        s.pool_pre_ping,
        s.auto_migrate,
        s.max_payload_bytes,
        s.retention_seconds,
    ) == (True, "DELETE", "FULL", 5, -1, 7, 3, False, False, 10, 43200)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("45s", 45),
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("1h30m", 5400),
        ("2w", 1209600),
    ],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "7x", "-3d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["3000000d", "99999999999d", "1000000000000"])
def test_durations_past_100_years_are_refused(text: str) -> None:
    """A database cannot add them to a date (or Python cannot read the date back)."""
    with pytest.raises(ValueError, match=f"duration '{text}' is longer than 100 years"):
        parse_duration(text)


def test_a_database_url_that_is_not_a_string_is_refused_in_one_line() -> None:
    from taskstore import TaskStore

    with pytest.raises(ConfigError, match="the database URL must be a string, got 5"):
        TaskStore.from_url(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("age", ["abc", None, float("nan"), True])
def test_an_age_for_purge_that_is_not_seconds_is_refused_in_one_line(age: object) -> None:
    from taskstore.errors import InvalidInput
    from taskstore.validation import purge_args

    with pytest.raises(InvalidInput, match="the age for purge must be seconds or a timedelta"):
        purge_args(age, ["completed"])  # type: ignore[arg-type]
