"""Check the container files: docker-compose.yml, the three Dockerfiles, .env.example,
and Prometheus's deploy/prometheus/prometheus.yml (read with PyYAML, a test dependency).

No Docker engine is needed. `docker-compose config` (Debian's docker-compose 1.29)
validates the compose file and prints it resolved, with every ${VARIABLE} filled in from
an env file made from .env.example. The Dockerfiles are read as text, and what their
commands name (modules, files, subcommands, options) is looked up in this repository.

The printed configuration is YAML and PyYAML is not a dependency of wordcrawl, so the
helpers below read the few parts they need from its text: `docker-compose config` always
prints the same plain layout (two spaces per level, list items at their key's level).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

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
DOCKERFILES = {
    "worker": ROOT / "job_worker" / "Dockerfile",
    "manager": ROOT / "job_manager" / "Dockerfile",
    "viewer": ROOT / "job_viewer" / "Dockerfile",
}
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


def compose_variables() -> set[str]:
    """Return the names of the ${VARIABLES} docker-compose.yml interpolates."""
    lines = COMPOSE_FILE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
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
def config(example_env_file: Path) -> str:
    """The resolved compose file, as `docker-compose config` prints it."""
    result = run_compose(example_env_file, "config")
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    # Compose warns (and goes on with an empty string) about a variable nobody set.
    assert "WARNING" not in result.stderr, result.stderr
    return result.stdout


def service_blocks(config_text: str) -> dict[str, list[str]]:
    """Split the printed configuration into the lines of each service."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_services = False
    for line in config_text.splitlines():
        if not line.startswith(" "):  # a top-level key: services, volumes, ...
            in_services = line == "services:"
            current = None
        elif in_services and re.fullmatch(r"  \S[^:]*:", line):
            current = blocks.setdefault(line.strip()[:-1], [])
        elif current is not None:
            current.append(line)
    return blocks


def section(block: list[str], key: str) -> list[str]:
    """Return the lines under `key:` of a service (its value, one level deeper)."""
    lines: list[str] = []
    inside = False
    for line in block:
        indent = len(line) - len(line.lstrip())
        if indent == 4 and not line.lstrip().startswith("- "):
            inside = line.strip() == f"{key}:"
        elif inside:
            lines.append(line)
    return lines


def items(lines: list[str]) -> list[str]:
    """Return the items of a printed list of strings (joining long, wrapped items)."""
    result: list[str] = []
    item_indent = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if text.startswith("- "):
            result.append(text[2:])
            item_indent = indent
        elif item_indent is not None and indent > item_indent:
            result[-1] += " " + text  # YAML folds a long plain string onto more lines
        else:
            item_indent = None  # a key at the list's level: the list has ended
    return [unquote(item) for item in result]


def mapping(lines: list[str]) -> dict[str, str]:
    """Return a printed mapping of strings (KEY: value), as in `environment:`."""
    pairs: list[list[str]] = []
    key_indent = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if key_indent is None or indent <= key_indent:
            key_indent = indent
            key, _, value = line.strip().partition(":")
            pairs.append([key, value.strip()])
        else:
            pairs[-1][1] += " " + line.strip()  # a long value, folded
    return {key: unquote(value) for key, value in pairs}


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value)
    return value


@pytest.fixture(scope="module")
def services(config: str) -> dict[str, list[str]]:
    return service_blocks(config)


def test_compose_file_passes_docker_compose_config(config: str):
    # The fixture asserts the exit status and the absence of warnings.
    assert config.startswith("services:")


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


def test_broker_and_database_stay_off_the_host_network(config: str, services):
    for name in ("job_broker", "job_db"):
        assert not section(services[name], "ports"), f"{name} must not publish a port"
    assert "published: 6379" not in config and "published: 5432" not in config


def test_published_ports(services):
    published = {
        name: "\n".join(section(block, "ports"))
        for name, block in services.items()
        if section(block, "ports") and name not in PROFILE_SERVICES
    }
    assert set(published) == {"job_manager", "job_viewer", "job_demo"}
    for name, port in (("job_manager", 5000), ("job_viewer", 5555), ("job_demo", 8001)):
        assert f"published: {port}" in published[name]
        assert f"target: {port}" in published[name]


def test_broker_keeps_tasks_and_asks_a_password(services):
    command = items(section(services["job_broker"], "command"))
    assert command[:3] == ["redis-server", "--appendonly", "yes"]
    # Bounded: caches (keys with a TTL) give way before task messages do.
    maxmemory = env_example()["WORDCRAWL_REDIS_MAXMEMORY"]
    assert command[command.index("--maxmemory") + 1] == maxmemory == Settings().redis_maxmemory
    assert command[command.index("--maxmemory-policy") + 1] == "volatile-lru"
    password = env_example()["REDIS_PASSWORD"]
    assert command[command.index("--requirepass") + 1] == password
    assert any(
        line.strip().endswith(":/data:rw") for line in section(services["job_broker"], "volumes")
    )


def test_app_services_share_settings_that_wordcrawl_accepts(services):
    for name in APP_SERVICES:
        environ = mapping(section(services[name], "environment"))
        settings = Settings.from_env(environ)  # raises on a value wordcrawl refuses
        assert settings.environment == "production"
        assert settings.secret_key == env_example()["SECRET_KEY"]
        assert settings.broker_url.endswith("@job_broker:6379/0")
        assert settings.celery_result_backend.startswith("db+postgresql+psycopg2://wordcrawl:")
        assert settings.celery_result_backend.endswith("@job_db:5432/wordcrawl")
        # The demo site is a private address: without this, every demo page is blocked.
        assert settings.allows_host("job_demo", 8001), name


def test_flower_gets_its_password_and_nobody_else_does(services):
    for name, block in services.items():
        environ = mapping(section(block, "environment"))
        if name == "job_viewer":
            assert environ["FLOWER_BASIC_AUTH"] == env_example()["FLOWER_BASIC_AUTH"]
        else:
            assert "FLOWER_BASIC_AUTH" not in environ, name


def test_the_manager_gets_the_instructor_password_and_nobody_else_does(services):
    for name, block in services.items():
        environ = mapping(section(block, "environment"))
        if name == "job_manager":
            password = env_example()["WORDCRAWL_ADMIN_PASSWORD"]
            assert environ["WORDCRAWL_ADMIN_PASSWORD"] == password
            # The placeholder itself: the manager refuses to start with it in production.
            with pytest.raises(SettingsError, match="WORDCRAWL_ADMIN_PASSWORD"):
                Settings.from_env(environ).refuse_placeholder_secrets()
        else:
            assert "WORDCRAWL_ADMIN_PASSWORD" not in environ, name


def test_workers_scale_with_their_own_node_names(services):
    worker = services["job_worker"]
    assert "replicas: 2" in [line.strip() for line in section(worker, "deploy")]
    # A fixed host or container name would give every replica the same node name.
    assert not section(worker, "hostname") and not section(worker, "container_name")
    assert not any(line.startswith(("    hostname:", "    container_name:")) for line in worker)
    # The healthcheck pings the node name that `python -m job_worker worker` gives.
    test = " ".join(items(section(worker, "healthcheck")))
    assert "celery -A job_tasks inspect ping" in test
    assert "worker@$$HOSTNAME" in test or "worker@$HOSTNAME" in test
    assert "--hostname" in (argv := worker_command("worker", Settings()))
    assert argv[argv.index("--hostname") + 1] == "worker@%h"


def test_workers_take_the_queues_given_in_worker_queues(services):
    command = items(section(services["job_worker"], "command"))
    assert command[:3] == ["wordcrawl", "worker", "--queues"]
    # Both queues unless WORKER_QUEUES says otherwise, named as `wordcrawl worker` knows them.
    default = command[3].removeprefix("${WORKER_QUEUES:-").removesuffix("}")
    assert default.split(",") == list(QUEUES)


def test_one_scheduler_runs_wordcrawl_beat_from_the_worker_image(services):
    scheduler, worker = services["job_scheduler"], services["job_worker"]
    command = items(section(scheduler, "command"))
    assert command == ["wordcrawl", "beat"]
    check_wordcrawl_argv(command)
    assert "replicas: 1" in [line.strip() for line in section(scheduler, "deploy")]
    assert block_value(scheduler, "image") == block_value(worker, "image")
    assert section(scheduler, "build") == section(worker, "build")
    # Some worker takes the housekeeping queue, where beat's ticks go.
    assert HOUSEKEEPING_QUEUE in items(section(worker, "command"))[3]


def test_tables_are_created_once_before_workers_and_manager_start(services):
    init = items(section(services["job_init"], "command"))
    assert init == ["wordcrawl", "init-db"]
    assert "restart" not in "\n".join(services["job_init"])  # a one-shot job
    for name in ("job_worker", "job_scheduler", "job_manager"):
        depends = [line.strip() for line in section(services[name], "depends_on")]
        assert (
            depends[depends.index("job_init:") + 1] == "condition: service_completed_successfully"
        )
        for server in ("job_broker:", "job_db:"):
            assert depends[depends.index(server) + 1] == "condition: service_healthy"


def test_long_running_services_restart(services):
    for name in SERVICES - {"job_init"}:
        assert "    restart: unless-stopped" in services[name], name


def test_healthchecks_avoid_api_health_and_curl(services):
    # /api/health answers 503 while no worker runs; slim images have no curl.
    for name in ("job_broker", "job_db", "job_worker", "job_manager", "job_viewer"):
        test = " ".join(items(section(services[name], "healthcheck")))
        assert test, f"{name} has no healthcheck"
        assert "/api/health" not in test and "curl" not in test, name


def test_compose_commands_are_valid_wordcrawl_commands(services):
    for name in ("job_init", "job_demo"):
        argv = items(section(services[name], "command"))
        assert argv[0] == "wordcrawl"
        check_wordcrawl_argv(argv)
    demo = items(section(services["job_demo"], "command"))
    assert demo[demo.index("--host") + 1] == "0.0.0.0"  # reachable from other containers
    assert demo[demo.index("--port") + 1] == "8001"


def check_wordcrawl_argv(argv: list[str]) -> dict[str, object]:
    """Parse `wordcrawl SUBCOMMAND ...` with the real command line; return its options."""
    subcommand = wordcrawl_cli.commands.get(argv[1])
    assert subcommand is not None, f"`wordcrawl {argv[1]}` does not exist"
    # make_context parses and checks the options without running the command.
    return subcommand.make_context(argv[1], list(argv[2:])).params


# --- The metrics profile: Prometheus --------------------------------------------------


def test_prometheus_starts_only_with_the_metrics_profile(example_env_file: Path, services):
    block = services["prometheus"]
    assert items(section(block, "profiles")) == ["metrics"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", block_value(block, "image"))
    # No password in front of Prometheus: only this machine may reach it.
    assert items(section(block, "ports")) == ["127.0.0.1:9090:9090/tcp"]
    mounts = items(section(block, "volumes"))
    assert f"{PROMETHEUS_CONFIG}:/etc/prometheus/prometheus.yml:ro" in mounts
    result = run_compose(example_env_file, "--profile", "metrics", "config", "-q")
    assert result.returncode == 0, result.stderr


def block_value(block: list[str], key: str) -> str:
    """Return the value of a one-line `key: value` of a service."""
    prefix = f"    {key}: "
    return next(line.removeprefix(prefix) for line in block if line.startswith(prefix))


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
        container_ports = re.findall(r"target: (\d+)", "\n".join(section(services[host], "ports")))
        assert port in container_ports, target
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


# --- Dockerfiles -----------------------------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, with continued lines joined."""
    result = []
    current = ""
    for raw in dockerfile.read_text().splitlines():
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


def arguments_of(dockerfile: Path, instruction: str) -> list[str]:
    return [args for name, args in instructions(dockerfile) if name == instruction]


def exec_form(arguments: str) -> list[str]:
    """Return a CMD in exec (JSON) form as a list, which is the form we want."""
    assert arguments.startswith("["), f"use the exec form, CMD [...]: {arguments}"
    return json.loads(arguments)


def copies(dockerfile: Path) -> list[tuple[str, PurePosixPath]]:
    """Return (source in the repo, destination in the image) of every COPY."""
    workdir = PurePosixPath("/")
    result = []
    for name, arguments in instructions(dockerfile):
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


def repo_file_for(dockerfile: Path, image_path: str) -> Path | None:
    """Return the repository file that a COPY puts at image_path, if one does."""
    wanted = PurePosixPath(image_path)
    for source, target in copies(dockerfile):
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


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_is_python_311_slim_and_runs_as_a_user(image: str):
    dockerfile = DOCKERFILES[image]
    assert arguments_of(dockerfile, "FROM") == ["python:3.11-slim"]
    steps = instructions(dockerfile)
    users = [i for i, (name, _) in enumerate(steps) if name == "USER"]
    assert users, "the image must switch to a non-root USER"
    user = steps[users[-1]][1]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    cmd = next(i for i, (name, _) in enumerate(steps) if name == "CMD")
    assert users[-1] < cmd
    assert any(name == "RUN" and "useradd" in args and user in args for name, args in steps)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_copies_files_that_exist_and_reach_the_build(image: str):
    for source, _ in copies(DOCKERFILES[image]):
        assert (ROOT / source).exists(), f"{image}: COPY {source}, which is not in the repo"
        assert not dockerignored(source), f"{image}: COPY {source}, which .dockerignore drops"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_installs_every_package_of_the_project(image: str):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {source for source, _ in copies(DOCKERFILES[image])}
    assert {"pyproject.toml", *packages} <= copied
    # `pip install [options] .`: the project from the copied source, not from PyPI.
    install = re.compile(r"pip install (--?\S+ )*\.(\s|$)")
    assert any(install.search(step) for step in arguments_of(DOCKERFILES[image], "RUN"))


def test_worker_image_starts_a_celery_worker_of_job_tasks():
    cmd = exec_form(arguments_of(DOCKERFILES["worker"], "CMD")[-1])
    assert cmd[:3] == ["python", "-m", "job_worker"]
    assert repo_file_for(DOCKERFILES["worker"], "/app/job_worker/__main__.py") == (
        ROOT / "job_worker" / "__main__.py"
    )
    # What `python -m job_worker NAME` execs (job_worker/__main__.py).
    argv = worker_command(cmd[3], Settings())
    celery = argv[argv.index("celery") :]
    assert celery[:4] == ["celery", "-A", "job_tasks", "worker"]
    assert "--task-events" in celery  # Flower shows tasks only with events
    assert (ROOT / "job_tasks" / "__init__.py").exists()


def test_worker_image_downloads_and_checks_nltk_stopwords():
    steps = arguments_of(DOCKERFILES["worker"], "RUN")
    env = " ".join(arguments_of(DOCKERFILES["worker"], "ENV"))
    download = next(step for step in steps if "nltk.downloader" in step)
    words = shlex.split(download.split("&&")[0])
    assert words[:3] == ["python", "-m", "nltk.downloader"] and words[-1] == "stopwords"
    target = words[words.index("-d") + 1]
    assert target == "$NLTK_DATA" and "NLTK_DATA=/usr/local/share/nltk_data" in env
    # The downloader exits with 0 even when it fetched nothing: the same step must load it.
    assert "stopwords.words('english')" in download and "assert" in download


def test_manager_image_serves_on_all_interfaces_port_5000():
    cmd = exec_form(arguments_of(DOCKERFILES["manager"], "CMD")[-1])
    assert cmd[:2] == ["wordcrawl", "serve"]
    options = check_wordcrawl_argv(cmd)
    assert options["host"] == "0.0.0.0" and options["port"] == 5000
    assert arguments_of(DOCKERFILES["manager"], "EXPOSE") == ["5000"]


def test_viewer_image_runs_flower_with_the_project_config():
    dockerfile = DOCKERFILES["viewer"]
    cmd = exec_form(arguments_of(dockerfile, "CMD")[-1])
    assert cmd[:4] == ["celery", "-A", "job_tasks", "flower"]
    options = dict(arg.removeprefix("--").split("=", 1) for arg in cmd[4:])
    assert options["address"] == "0.0.0.0" and options["port"] == "5555"
    # --conf must name the file where the image really has it.
    assert repo_file_for(dockerfile, options["conf"]) == ROOT / "job_viewer" / "flowerconfig.py"
    assert (ROOT / "job_viewer" / "flowerconfig.py").is_file()
    # --db must be in the volume the user owns.
    data = str(PurePosixPath(options["db"]).parent)
    assert json.loads(arguments_of(dockerfile, "VOLUME")[-1]) == [data]
    assert any("chown" in step and data in step for step in arguments_of(dockerfile, "RUN"))


def test_dockerignore_keeps_secrets_and_local_state_out():
    for path in (".env", ".git", ".venv", ".wordcrawl", "job_tasks/__pycache__"):
        assert dockerignored(path), f".dockerignore must exclude {path}"
