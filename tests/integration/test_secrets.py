"""Placeholder secrets: in production the manager and Flower refuse to start with them.

A deployment that copied .env.example and never changed a secret (SECRET_KEY, the
instructor's password, a password inside CELERY_BROKER_URL or DATABASE_URL, Flower's
login) is refused at start, with a sentence naming the variable and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_viewer import flower_env

from job_manager import create_app
from job_tasks.settings import Settings, SettingsError
from job_viewer import flower_command
from wordcrawl.local.services import free_port

REAL = {
    "WORDCRAWL_ENV": "production",
    "SECRET_KEY": "a-secret-key-of-our-own",
    "WORDCRAWL_ADMIN_PASSWORD": "an-instructor-password-of-our-own",
}


def production_env(services, **changes: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WORDCRAWL_")}
    return {**env, **services.env, **REAL, "PYTHONUNBUFFERED": "1", **changes}


@pytest.mark.parametrize(
    ("name", "placeholder"),
    [
        ("SECRET_KEY", "change-me-to-a-long-random-string"),
        ("WORDCRAWL_ADMIN_PASSWORD", "change-me-admin-password"),
        ("CELERY_BROKER_URL", "redis://:change-me-redis-password@127.0.0.1:6379/0"),
    ],
)
def test_wordcrawl_serve_refuses_a_placeholder_in_production(services, name, placeholder):
    port = free_port()

    result = subprocess.run(
        [sys.executable, "-m", "wordcrawl", "serve", "--port", str(port)],
        env=production_env(services, **{name: placeholder}),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{name} still holds a placeholder of .env.example" in output, output
    assert "Traceback" not in output and "change-me-" not in output.replace("'change-me'", "")


def test_the_app_itself_refuses_a_placeholder_in_production(services):
    # gunicorn imports create_app() without the command line: it refuses there too.
    placeholder = "postgresql://wordcrawl:change-me-postgres-password@127.0.0.1/wordcrawl"
    settings = Settings.from_env({**REAL, "DATABASE_URL": placeholder})

    with pytest.raises(SettingsError, match="DATABASE_URL still holds a placeholder"):
        create_app(settings=settings)


def test_flower_refuses_the_placeholder_password_in_production(services, tmp_path):
    db_path = tmp_path / "flower.db"
    env = flower_env(services.env, basic_auth="admin:change-me-flower-password")
    env.update(REAL)

    result = subprocess.run(
        flower_command(free_port(), db_path),
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        start_new_session=True,
    )

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "FLOWER_BASIC_AUTH still holds the placeholder password" in output, output
    assert "Traceback" not in output, output
    assert not db_path.exists()
