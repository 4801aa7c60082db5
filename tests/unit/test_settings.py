"""Settings from the environment (docs/reference.md, "Configuration"; job_tasks/settings.py)."""

import ssl
from pathlib import Path

import pytest
import redis
from celery.app.backends import by_url
from celery.backends.database import DatabaseBackend
from kombu import Connection
from sqlalchemy import create_engine

from job_tasks.celeryconfig import celery_config
from job_tasks.settings import (
    Settings,
    SettingsError,
    is_placeholder,
    parse_allowed_hosts,
    sqlalchemy_url,
)


def test_defaults_without_any_variable():
    settings = Settings.from_env({})

    assert settings.environment == "development"
    assert settings.max_urls_per_job == 100
    assert settings.max_pages_per_job == 1000
    assert settings.max_depth == 3
    assert settings.max_url_length == 2048
    assert settings.max_response_bytes == 5_000_000
    assert settings.max_redirects == 5
    assert settings.per_host_concurrency == 8
    assert settings.per_host_delay_ms == 0
    assert settings.allowed_hosts == frozenset()
    assert settings.allow_private is False
    assert "wordcrawl" in settings.user_agent


def test_variables_override_defaults():
    settings = Settings.from_env(
        {
            "CELERY_BROKER_URL": "redis://broker:6379/1",
            "DATABASE_URL": "postgresql://u:p@db/wc",
            "WORDCRAWL_MAX_PAGES_PER_JOB": " 50 ",
            "WORDCRAWL_PER_HOST_CONCURRENCY": "32",
            "WORDCRAWL_CONNECT_TIMEOUT": "2.5",
            "WORDCRAWL_ALLOW_PRIVATE": "1",
            "WORDCRAWL_ALLOWED_HOSTS": "localhost:8001",
            "WORDCRAWL_API_URL": "http://manager:5000/",
        }
    )

    assert settings.broker_url == "redis://broker:6379/1"
    assert settings.database_url == "postgresql://u:p@db/wc"
    assert settings.max_pages_per_job == 50
    assert settings.per_host_concurrency == 32
    assert settings.connect_timeout == 2.5
    assert settings.allow_private is True
    assert settings.allowed_hosts == {("localhost", 8001)}
    assert settings.api_url == "http://manager:5000"


def test_empty_variable_means_the_default():
    assert Settings.from_env({"WORDCRAWL_MAX_REDIRECTS": "  "}).max_redirects == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False)],
)
def test_allow_private_flag_spellings(value, expected):
    assert Settings.from_env({"WORDCRAWL_ALLOW_PRIVATE": value}).allow_private is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORDCRAWL_MAX_PAGES_PER_JOB", "lots"),
        ("WORDCRAWL_MAX_DEPTH", "1.5"),
        ("WORDCRAWL_MAX_URLS_PER_JOB", "-1"),
        ("WORDCRAWL_MAX_RESPONSE_BYTES", "5MB"),
        ("WORDCRAWL_PER_HOST_CONCURRENCY", "eight"),
        ("WORDCRAWL_CONNECT_TIMEOUT", "soon"),
        ("WORDCRAWL_READ_TIMEOUT", "0"),
        ("WORDCRAWL_PAGE_TIMEOUT", "-3"),
        ("WORDCRAWL_ALLOW_PRIVATE", "maybe"),
        ("WORDCRAWL_ALLOWED_HOSTS", "localhost"),
        ("WORDCRAWL_REDIS_MAXMEMORY", "lots"),
        ("WORDCRAWL_REDIS_MAXMEMORY", "256 mb; requirepass x"),
    ],
)
def test_bad_value_is_an_error_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    "name", ["WORDCRAWL_CONNECT_TIMEOUT", "WORDCRAWL_READ_TIMEOUT", "WORDCRAWL_PAGE_TIMEOUT"]
)
def test_nan_timeout_is_an_error_naming_the_variable(name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "nan"})


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_secret_key_is_required_outside_development(environment):
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({"WORDCRAWL_ENV": environment})


def test_production_with_a_secret_key_is_accepted():
    settings = Settings.from_env({"WORDCRAWL_ENV": "production", "SECRET_KEY": "s3cret"})

    assert settings.secret_key == "s3cret"


def env_example() -> dict[str, str]:
    """The variables of .env.example, as compose users copy them."""
    lines = (Path(__file__).resolve().parents[2] / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def production(**variables: str) -> dict[str, str]:
    """A production environment whose every secret is real, with these variables changed."""
    return {
        "WORDCRAWL_ENV": "production",
        "SECRET_KEY": "a-real-secret-key",
        "WORDCRAWL_ADMIN_PASSWORD": "a-real-admin-password",
        "CELERY_BROKER_URL": "redis://:a-real-redis-password@broker:6379/0",
        "DATABASE_URL": "postgresql://wordcrawl:a-real-pg-password@db:5432/wordcrawl",
        **variables,
    }


def test_production_with_real_secrets_starts():
    Settings.from_env(production()).refuse_placeholder_secrets()  # does not raise


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECRET_KEY", "{SECRET_KEY}"),
        ("WORDCRAWL_ADMIN_PASSWORD", "{WORDCRAWL_ADMIN_PASSWORD}"),
        ("CELERY_BROKER_URL", "redis://:{REDIS_PASSWORD}@job_broker:6379/0"),
        ("DATABASE_URL", "postgresql://wordcrawl:{POSTGRES_PASSWORD}@job_db:5432/wordcrawl"),
        ("CELERY_RESULT_BACKEND", "db+postgresql://wordcrawl:{POSTGRES_PASSWORD}@job_db/wordcrawl"),
    ],
)
def test_each_placeholder_of_env_example_is_refused_in_production(name, value):
    settings = Settings.from_env(production(**{name: value.format(**env_example())}))

    assert settings.placeholder_secrets() == [name]
    with pytest.raises(SettingsError, match=rf"^{name} still holds a placeholder"):
        settings.refuse_placeholder_secrets()


def test_placeholders_are_accepted_in_development_and_all_named_in_production():
    placeholders = {
        "SECRET_KEY": env_example()["SECRET_KEY"],
        "WORDCRAWL_ADMIN_PASSWORD": env_example()["WORDCRAWL_ADMIN_PASSWORD"],
    }
    Settings.from_env(placeholders).refuse_placeholder_secrets()  # development: a laptop

    with pytest.raises(SettingsError, match=r"^SECRET_KEY, WORDCRAWL_ADMIN_PASSWORD still hold"):
        Settings.from_env(production(**placeholders)).refuse_placeholder_secrets()


def test_every_secret_of_env_example_is_a_placeholder_wordcrawl_knows():
    secrets = ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "SECRET_KEY", "WORDCRAWL_ADMIN_PASSWORD")
    for name in secrets:
        assert is_placeholder(env_example()[name]), name
    user, _, password = env_example()["FLOWER_BASIC_AUTH"].partition(":")
    assert user and is_placeholder(password)
    assert not is_placeholder("") and not is_placeholder("changed-it")


def test_the_class_server_bounds_have_their_defaults():
    settings = Settings.from_env({})

    assert settings.admin_password == ""  # no instructor until one is set
    assert settings.min_schedule_minutes == 10
    assert settings.max_schedules_per_client == 5
    assert settings.statement_timeout_ms == 5000
    assert settings.metrics_cache_seconds == 5


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("", frozenset()),
        ("localhost:8001", {("localhost", 8001)}),
        ("LocalHost:8001, 127.0.0.1:9000", {("localhost", 8001), ("127.0.0.1", 9000)}),
        ("[::1]:8001", {("::1", 8001)}),
        (",,demo.test:80,", {("demo.test", 80)}),
    ],
    ids=["empty", "one", "several-and-case", "ipv6", "stray-commas"],
)
def test_allowed_hosts_are_parsed(value, hosts):
    assert parse_allowed_hosts(value) == hosts


@pytest.mark.parametrize(
    "value",
    ["localhost", "localhost:", ":8001", "localhost:http", "localhost:70000", "::1:8001"],
    ids=["no-port", "empty-port", "no-host", "port-not-a-number", "port-too-big", "bare-ipv6"],
)
def test_allowed_hosts_need_host_and_port(value):
    with pytest.raises(SettingsError, match="WORDCRAWL_ALLOWED_HOSTS"):
        parse_allowed_hosts(value)


def test_allows_host_ignores_case_and_brackets():
    settings = Settings.from_env({"WORDCRAWL_ALLOWED_HOSTS": "demo.test:8001,[::1]:8002"})

    assert settings.allows_host("DEMO.test", 8001)
    assert settings.allows_host("[::1]", 8002)
    assert not settings.allows_host("demo.test", 8002)


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("postgresql://u@db:5432/wc", "postgresql+psycopg2://u@db:5432/wc"),
        ("postgres://u@db/wc", "postgresql+psycopg2://u@db/wc"),
        ("postgresql+psycopg2://u@db/wc", "postgresql+psycopg2://u@db/wc"),
        ("sqlite:///wc.db", "sqlite:///wc.db"),
    ],
)
def test_sqlalchemy_url_names_the_psycopg2_driver(database_url, expected):
    assert sqlalchemy_url(database_url) == expected


def test_result_backend_is_derived_from_database_url():
    settings = Settings.from_env({"DATABASE_URL": "postgres://u@db/wc"})

    assert settings.celery_result_backend == "db+postgresql+psycopg2://u@db/wc"


def test_result_backend_variable_wins():
    settings = Settings.from_env(
        {"DATABASE_URL": "postgres://u@db/wc", "CELERY_RESULT_BACKEND": "redis://r/2"}
    )

    assert settings.celery_result_backend == "redis://r/2"


# A worker on another machine reaches the broker and the database over TLS with a password
# (docs/operations.md, "Workers on other machines"): what the URLs ask for must reach the drivers.
REMOTE_BROKER_URL = "rediss://crawler:s%40cret@broker.example.org:6380/0?ssl_cert_reqs=required"
REMOTE_DATABASE_URL = (
    "postgresql://crawler:s%40cret@db.example.org:5432/wordcrawl"
    "?sslmode=verify-full&sslrootcert=/etc/wordcrawl/ca.pem"
)


def test_database_tls_parameters_survive_into_the_result_backend_and_the_engine():
    settings = Settings.from_env({"DATABASE_URL": REMOTE_DATABASE_URL})

    assert settings.celery_result_backend == (
        "db+postgresql+psycopg2://crawler:s%40cret@db.example.org:5432/wordcrawl"
        "?sslmode=verify-full&sslrootcert=/etc/wordcrawl/ca.pem"
    )
    # What Celery's database backend and wordcrawl's engine hand to psycopg2 (no connection).
    backend, backend_url = by_url(settings.celery_result_backend)
    assert issubclass(backend, DatabaseBackend)  # Celery's, or wordcrawl's subclass of it
    for url in (backend_url, settings.sqlalchemy_url):
        engine = create_engine(url)
        _, connect_args = engine.dialect.create_connect_args(engine.url)
        assert connect_args["sslmode"] == "verify-full"
        assert connect_args["sslrootcert"] == "/etc/wordcrawl/ca.pem"
        assert connect_args["password"] == "s@cret"
        assert connect_args["host"] == "db.example.org"


def test_rediss_broker_url_asks_for_a_verified_tls_connection():
    settings = Settings.from_env({"CELERY_BROKER_URL": REMOTE_BROKER_URL})

    # Celery's messages (kombu) ...
    connection = Connection(celery_config(settings)["broker_url"])
    assert connection.transport_cls == "rediss"
    assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert (connection.userid, connection.password) == ("crawler", "s@cret")
    # ... and wordcrawl's own use of Redis (robots.txt cache, per-host limits).
    pool = redis.Redis.from_url(settings.broker_url).connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert pool.connection_kwargs["password"] == "s@cret"


@pytest.mark.parametrize("value", ["256mb", "1GB", "1000000", "0"])
def test_redis_maxmemory_takes_redis_units(value):
    assert Settings.from_env({"WORDCRAWL_REDIS_MAXMEMORY": value}).redis_maxmemory == value.lower()
