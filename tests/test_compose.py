"""Check the container files: docker-compose.yml, the Dockerfile, .env.example, and
Prometheus's deploy/prometheus/prometheus.yml.

No Docker engine is needed. `docker-compose config` (Debian's docker-compose 1.29)
validates the compose file and prints it resolved, with every ${VARIABLE} filled in from
an env file made from .env.example; that output is YAML, read with PyYAML's safe_load (a
test dependency). The Dockerfile is read as text, and what its commands name (modules,
files, subcommands, options) is looked up in this repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from job_manager import create_app
from job_tasks.celeryconfig import HOUSEKEEPING_QUEUE, QUEUES
from job_tasks.settings import Settings, SettingsError
from job_worker.command import worker_command
from wordcrawl.cli import main as wordcrawl_cli

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {
    "job_broker",
    "job_db",
    "job_init",
    "job_worker",
    "job_scheduler",
    "job_manager",
    "job_viewer",
    "job_demo",
}
# Services that start only with their profile (`docker compose --profile metrics up`);
# docker-compose 1.29 still lists and prints them in `config`.
PROFILE_SERVICES = {"prometheus": "metrics"}
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
# Services that run wordcrawl's code and so need its settings.
APP_SERVICES = ("job_init", "job_worker", "job_scheduler", "job_manager", "job_viewer")
# Services that run the project's one image, each with a command of its own.
IMAGE_SERVICES = (*APP_SERVICES, "job_demo")
# Variables Compose reads by itself from .env rather than through ${...}.
COMPOSE_OWN_VARIABLES = {"COMPOSE_PROJECT_NAME"}

INSTALL_HINT = "install Debian's docker-compose: apt-get install -y docker-compose"


# --- .env.example ----------------------------------------------------------------------


def env_example() -> dict[str, str]:
    """Return the variables of .env.example (KEY=value lines)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not KEY=value"
            values[key.strip()] = value
    return values


def strings_in(value: Any) -> Iterator[str]:
    """Yield every string of a YAML document: keys, values and list items."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def compose_variables() -> set[str]:
    """Return the names of the ${VARIABLES} docker-compose.yml interpolates."""
    text = "\n".join(strings_in(yaml.safe_load(COMPOSE_FILE.read_text())))
    # $${X} and $$X are literal dollars for the container's shell, not Compose's.
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def test_env_example_defines_every_variable_compose_uses():
    missing = compose_variables() - set(env_example())
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_has_no_variable_compose_ignores():
    unused = set(env_example()) - compose_variables() - COMPOSE_OWN_VARIABLES
    assert not unused, f".env.example sets variables docker-compose.yml never reads: {unused}"


def test_every_env_example_variable_is_explained_by_a_comment():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            block_start = number
            while (
                block_start > 0
                and lines[block_start - 1].strip()
                and not lines[block_start - 1].startswith("#")
            ):
                block_start -= 1  # a group of related variables shares one comment
            assert block_start > 0 and lines[block_start - 1].startswith("#"), (
                f".env.example line {number + 1} ({line.split('=')[0]}) has no comment above it"
            )


def test_env_example_placeholders_say_change_me():
    secrets = {
        "REDIS_PASSWORD",
        "POSTGRES_PASSWORD",
        "SECRET_KEY",
        "FLOWER_BASIC_AUTH",
        "WORDCRAWL_ADMIN_PASSWORD",
    }
    values = env_example()
    for name in secrets:
        assert "change-me" in values[name], f"{name} in .env.example must be a placeholder"


# --- docker-compose config -------------------------------------------------------------


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose ... config` on the real compose file with this env file."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(f"docker-compose is not installed ({INSTALL_HINT})")
    # The variables come from the env file only: the same names in this process's
    # environment would win over it and make the result depend on the machine.
    names = set(env_example()) | compose_variables()
    environ = {
        k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")
    }
    return subprocess.run(
        [
            binary,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "--file",
            str(COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def example_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An env file with the values of .env.example, outside the project folder.

    (docker-compose 1.29 reads .env from the project folder by default; a developer's
    real .env there must not decide what this test sees.)
    """
    path = tmp_path_factory.mktemp("compose") / "example.env"
    shutil.copyfile(ENV_EXAMPLE, path)
    return path


@pytest.fixture(scope="module")
def config(example_env_file: Path) -> dict[str, Any]:
    """The resolved compose file, as `docker-compose config` prints it."""
    result = run_compose(example_env_file, "config")
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    # Compose warns (and goes on with an empty string) about a variable nobody set.
    assert "WARNING" not in result.stderr, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["services"]


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Return a service's ports as {port on the host: port in the container}."""
    return {int(port["published"]): int(port["target"]) for port in service.get("ports", [])}


def test_compose_file_passes_docker_compose_config(config: dict[str, Any]):
    # The fixture asserts the exit status and the absence of warnings.
    assert set(config["services"]) == SERVICES | set(PROFILE_SERVICES)


def test_compose_names_its_services(example_env_file: Path):
    result = run_compose(example_env_file, "config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES | set(PROFILE_SERVICES)


def test_missing_password_stops_compose_with_a_clear_message(tmp_path: Path):
    env_file = tmp_path / "incomplete.env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in env_example().items() if k != "REDIS_PASSWORD")
    )
    result = run_compose(env_file, "config")
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr


def test_broker_and_database_stay_off_the_host_network(services):
    for name in ("job_broker", "job_db"):
        assert "ports" not in services[name], f"{name} must not publish a port"
    for name, service in services.items():
        if name not in PROFILE_SERVICES:
            assert not {6379, 5432} & set(published_ports(service)), name


def test_published_ports(services):
    published = {
        name: published_ports(service)
        for name, service in services.items()
        if "ports" in service and name not in PROFILE_SERVICES
    }
    assert published == {
        "job_manager": {5000: 5000},
        "job_viewer": {5555: 5555},
        "job_demo": {8001: 8001},
    }


def test_broker_keeps_tasks_and_asks_a_password(services):
    command = services["job_broker"]["command"]
    assert command[:3] == ["redis-server", "--appendonly", "yes"]
    # Bounded: caches (keys with a TTL) give way before task messages do.
    maxmemory = env_example()["WORDCRAWL_REDIS_MAXMEMORY"]
    assert command[command.index("--maxmemory") + 1] == maxmemory == Settings().redis_maxmemory
    assert command[command.index("--maxmemory-policy") + 1] == "volatile-lru"
    password = env_example()["REDIS_PASSWORD"]
    assert command[command.index("--requirepass") + 1] == password
    assert any(volume.endswith(":/data:rw") for volume in services["job_broker"]["volumes"])


def test_app_services_share_settings_that_wordcrawl_accepts(services):
    for name in APP_SERVICES:
        settings = Settings.from_env(services[name]["environment"])  # raises on a bad value
        assert settings.environment == "production"
        assert settings.secret_key == env_example()["SECRET_KEY"]
        assert settings.broker_url.endswith("@job_broker:6379/0")
        assert settings.celery_result_backend.startswith("db+postgresql+psycopg2://wordcrawl:")
        assert settings.celery_result_backend.endswith("@job_db:5432/wordcrawl")
        # The demo site is a private address: without this, every demo page is blocked.
        assert settings.allows_host("job_demo", 8001), name


def test_flower_gets_its_password_and_nobody_else_does(services):
    for name, service in services.items():
        environ = service.get("environment", {})
        if name == "job_viewer":
            assert environ["FLOWER_BASIC_AUTH"] == env_example()["FLOWER_BASIC_AUTH"]
        else:
            assert "FLOWER_BASIC_AUTH" not in environ, name


def test_the_manager_gets_the_instructor_password_and_nobody_else_does(services):
    for name, service in services.items():
        environ = service.get("environment", {})
        if name == "job_manager":
            password = env_example()["WORDCRAWL_ADMIN_PASSWORD"]
            assert environ["WORDCRAWL_ADMIN_PASSWORD"] == password
            # The placeholder itself: the manager refuses to start with it in production.
            with pytest.raises(SettingsError, match="WORDCRAWL_ADMIN_PASSWORD"):
                Settings.from_env(environ).refuse_placeholder_secrets()
        else:
            assert "WORDCRAWL_ADMIN_PASSWORD" not in environ, name


def test_every_wordcrawl_service_runs_the_one_image_with_a_command_of_its_own(services):
    for name in IMAGE_SERVICES:
        service = services[name]
        assert service["build"] == {"context": str(ROOT), "dockerfile": "Dockerfile"}, name
        assert service["image"] == "wordcrawl:latest", name
        assert service.get("command"), f"{name} must say what it runs"
    commands = [tuple(services[name]["command"]) for name in IMAGE_SERVICES]
    assert len(set(commands)) == len(commands)


def test_workers_scale_with_their_own_node_names(services):
    worker = services["job_worker"]
    assert worker["deploy"]["replicas"] == 2
    # A fixed host or container name would give every replica the same node name.
    assert "hostname" not in worker and "container_name" not in worker
    # The healthcheck pings the node name that `wordcrawl worker` gives.
    test = " ".join(worker["healthcheck"]["test"])
    assert "celery -A job_tasks inspect ping" in test
    assert "worker@$$HOSTNAME" in test or "worker@$HOSTNAME" in test
    options = check_wordcrawl_argv(worker["command"])
    argv = worker_command(options["name"], Settings())
    assert argv[argv.index("--hostname") + 1] == "worker@%h"


def test_workers_run_a_celery_worker_of_job_tasks_with_the_queues_of_worker_queues(services):
    command = services["job_worker"]["command"]
    assert command[:3] == ["wordcrawl", "worker", "--queues"]
    # Both queues unless WORKER_QUEUES says otherwise, named as `wordcrawl worker` knows them.
    assert command[3].split(",") == list(QUEUES)
    # What `wordcrawl worker` execs (job_worker/command.py).
    argv = worker_command(check_wordcrawl_argv(command)["name"], Settings())
    celery = argv[argv.index("celery") :]
    assert celery[:4] == ["celery", "-A", "job_tasks", "worker"]
    assert "--task-events" in celery  # Flower shows tasks only with events


def test_one_scheduler_runs_wordcrawl_beat(services):
    scheduler, worker = services["job_scheduler"], services["job_worker"]
    assert scheduler["command"] == ["wordcrawl", "beat"]
    check_wordcrawl_argv(scheduler["command"])
    assert scheduler["deploy"]["replicas"] == 1
    # Some worker takes the housekeeping queue, where beat's ticks go.
    assert HOUSEKEEPING_QUEUE in worker["command"][3].split(",")


def test_tables_are_created_once_before_workers_and_manager_start(services):
    assert services["job_init"]["command"] == ["wordcrawl", "init-db"]
    assert "restart" not in services["job_init"]  # a one-shot job
    for name in ("job_worker", "job_scheduler", "job_manager"):
        depends = services[name]["depends_on"]
        assert depends["job_init"] == {"condition": "service_completed_successfully"}
        for server in ("job_broker", "job_db"):
            assert depends[server] == {"condition": "service_healthy"}


def test_long_running_services_restart(services):
    for name in SERVICES - {"job_init"}:
        assert services[name]["restart"] == "unless-stopped", name


def test_healthchecks_avoid_api_health_and_curl(services):
    # /api/health answers 503 while no worker runs; slim images have no curl.
    for name in ("job_broker", "job_db", "job_worker", "job_manager", "job_viewer"):
        test = " ".join(services[name].get("healthcheck", {}).get("test", []))
        assert test, f"{name} has no healthcheck"
        assert "/api/health" not in test and "curl" not in test, name


def test_compose_commands_are_valid_wordcrawl_commands(services):
    for name in ("job_init", "job_demo", "job_manager", "job_worker", "job_scheduler"):
        argv = services[name]["command"]
        assert argv[0] == "wordcrawl"
        check_wordcrawl_argv(argv)
    demo = check_wordcrawl_argv(services["job_demo"]["command"])
    assert demo["host"] == "0.0.0.0" and demo["port"] == 8001  # reachable from other containers
    manager = check_wordcrawl_argv(services["job_manager"]["command"])
    assert manager["host"] == "0.0.0.0" and manager["port"] == 5000


def check_wordcrawl_argv(argv: list[str]) -> dict[str, object]:
    """Parse `wordcrawl SUBCOMMAND ...` with the real command line; return its options."""
    subcommand = wordcrawl_cli.commands.get(argv[1])
    assert subcommand is not None, f"`wordcrawl {argv[1]}` does not exist"
    # make_context parses and checks the options without running the command.
    return subcommand.make_context(argv[1], list(argv[2:])).params


def test_viewer_runs_flower_with_the_project_config(services):
    viewer = services["job_viewer"]
    command = viewer["command"]
    assert command[:4] == ["celery", "-A", "job_tasks", "flower"]
    options = dict(arg.removeprefix("--").split("=", 1) for arg in command[4:])
    assert options["address"] == "0.0.0.0" and options["port"] == "5555"
    # --conf must name the file where the image really has it.
    assert repo_file_for(options["conf"]) == ROOT / "job_viewer" / "flowerconfig.py"
    assert (ROOT / "job_viewer" / "flowerconfig.py").is_file()
    # --db must be in a folder the image's user owns, kept in a volume.
    data = str(PurePosixPath(options["db"]).parent)
    assert any("chown" in step and data in step for step in arguments_of("RUN"))
    assert any(volume.endswith(f":{data}:rw") for volume in viewer["volumes"])


# --- The metrics profile: Prometheus --------------------------------------------------


def test_prometheus_starts_only_with_the_metrics_profile(example_env_file: Path, services):
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["metrics"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    # No password in front of Prometheus: only this machine may reach it.
    assert prometheus["ports"] == ["127.0.0.1:9090:9090/tcp"]
    assert f"{PROMETHEUS_CONFIG}:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    result = run_compose(example_env_file, "--profile", "metrics", "config", "-q")
    assert result.returncode == 0, result.stderr


def prometheus_targets() -> dict[str, list[str]]:
    """Return each scrape job of prometheus.yml with its targets, checking its shape."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job
        jobs[job["job_name"]] = [t for c in job["static_configs"] for t in c["targets"]]
    return jobs


def test_prometheus_scrapes_the_manager_and_flower_where_they_listen(services):
    targets = prometheus_targets()
    assert targets == {"wordcrawl": ["job_manager:5000"], "flower": ["job_viewer:5555"]}
    for target in (target for job in targets.values() for target in job):
        host, port = target.split(":")
        # A service name on the stack's network, and the port its container listens on.
        assert int(port) in published_ports(services[host]).values(), target
    # The manager serves /metrics (Flower's is checked live in test_viewer.py).
    app = create_app(settings=Settings())
    assert "/metrics" in {rule.rule for rule in app.url_map.iter_rules()}


def test_prometheus_config_holds_no_password():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in config["scrape_configs"]:
        auth = job.get("basic_auth", {})
        assert "password" not in auth, "use password_file, from a Compose secret"


def test_promtool_accepts_the_prometheus_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (it comes with Prometheus)")
    version = subprocess.run([promtool, "--version"], capture_output=True, text=True, check=False)
    if not re.search(r"version 3\.", version.stdout + version.stderr):
        pytest.skip("promtool older than Prometheus 3 (the pinned image) would refuse its fields")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- The Dockerfile -------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's (INSTRUCTION, arguments) pairs, with continued lines joined."""
    result = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instruction, _, arguments = (current + line).partition(" ")
        result.append((instruction.upper(), arguments.strip()))
        current = ""
    return result


def arguments_of(instruction: str) -> list[str]:
    return [args for name, args in instructions() if name == instruction]


def exec_form(arguments: str) -> list[str]:
    """Return a CMD in exec (JSON) form as a list, which is the form we want."""
    assert arguments.startswith("["), f"use the exec form, CMD [...]: {arguments}"
    return json.loads(arguments)


def copies() -> list[tuple[str, PurePosixPath]]:
    """Return (source in the repo, destination in the image) of every COPY."""
    workdir = PurePosixPath("/")
    result = []
    for name, arguments in instructions():
        if name == "WORKDIR":
            workdir = workdir / arguments
        elif name == "COPY":
            *sources, destination = shlex.split(arguments)
            assert not any(s.startswith("--") for s in sources), "keep COPY plain"
            for source in sources:
                target = workdir / destination
                if destination.endswith("/"):
                    target = target / Path(source).name
                result.append((source, target))
    return result


def repo_file_for(image_path: str) -> Path | None:
    """Return the repository file that a COPY puts at image_path, if one does."""
    wanted = PurePosixPath(image_path)
    for source, target in copies():
        if wanted == target:
            return ROOT / source
        if target in wanted.parents:
            return ROOT / source / wanted.relative_to(target)
    return None


def dockerignored(source: str) -> bool:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("!")
    ]
    return any(fnmatch(source, p) or fnmatch(source, p.removeprefix("**/")) for p in patterns)


def test_one_dockerfile_at_the_root():
    assert DOCKERFILE.is_file()
    assert not list(ROOT.glob("*/Dockerfile")), "every service runs the root Dockerfile's image"


def test_image_is_python_311_slim_and_runs_as_a_user():
    assert arguments_of("FROM") == ["python:3.11-slim"]
    steps = instructions()
    users = [i for i, (name, _) in enumerate(steps) if name == "USER"]
    assert users, "the image must switch to a non-root USER"
    user = steps[users[-1]][1]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    cmd = next(i for i, (name, _) in enumerate(steps) if name == "CMD")
    assert users[-1] < cmd
    assert any(name == "RUN" and "useradd" in args and user in args for name, args in steps)


def test_image_copies_files_that_exist_and_reach_the_build():
    for source, _ in copies():
        assert (ROOT / source).exists(), f"COPY {source}, which is not in the repo"
        assert not dockerignored(source), f"COPY {source}, which .dockerignore drops"


def test_image_installs_every_package_of_the_project_and_only_its_runtime_dependencies():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {source for source, _ in copies()}
    assert {"pyproject.toml", *packages} <= copied
    steps = arguments_of("RUN")
    # `pip install [options] .`: the project from the copied source, not from PyPI, and
    # none of its extras (test tools, embedded servers).
    install = re.compile(r"pip install (--?\S+ )*\.(\s|$)")
    assert any(install.search(step) for step in steps)
    assert not any(re.search(r"pip install .*\.\[", step) for step in steps)
    assert any("['project']['dependencies']" in step for step in steps)


def test_image_downloads_and_checks_nltk_stopwords():
    steps = arguments_of("RUN")
    env = " ".join(arguments_of("ENV"))
    download = next(step for step in steps if "nltk.downloader" in step)
    words = shlex.split(download.split("&&")[0])
    assert words[:3] == ["python", "-m", "nltk.downloader"] and words[-1] == "stopwords"
    target = words[words.index("-d") + 1]
    assert target == "$NLTK_DATA" and "NLTK_DATA=/usr/local/share/nltk_data" in env
    # The downloader exits with 0 even when it fetched nothing: the same step must load it.
    assert "stopwords.words('english')" in download and "assert" in download


def test_image_serves_the_manager_on_all_interfaces_port_5000_by_default():
    cmd = exec_form(arguments_of("CMD")[-1])
    assert cmd[:2] == ["wordcrawl", "serve"]
    options = check_wordcrawl_argv(cmd)
    assert options["host"] == "0.0.0.0" and options["port"] == 5000
    exposed = " ".join(arguments_of("EXPOSE")).split()
    assert {"5000", "5555", "8001"} <= set(exposed)


def test_dockerignore_keeps_secrets_and_local_state_out():
    for path in (".env", ".git", ".venv", ".wordcrawl", "job_tasks/__pycache__"):
        assert dockerignored(path), f".dockerignore must exclude {path}"
