"""docker-compose.yml, checked without a Docker engine.

What can go wrong without anyone noticing until deploy day: a service missing, a command
that is not one of ours, an environment variable nobody reads (a typo in
``SHOPFLOW_WAREHOUSE__BACKEND`` silently keeps DuckDB), a password written into the file,
a service without healthcheck or a state folder without a volume.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "docker" / ".env.example"
DOCKERFILE = REPO / "docker" / "Dockerfile"

AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}
REQUIRED = {"postgres", "redis", "airflow-init", "shopflow-serve", *AIRFLOW_SERVICES}
# variables read by our own code outside Settings
EXTRA_SHOPFLOW_VARS = {"SHOPFLOW_CONFIG"}
# variables read by the container entrypoint or the images, not by Airflow's config
EXTRA_CONTAINER_VARS = {"AIRFLOW_HOME", "AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD",
                        "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "REDISCLI_AUTH",
                        "DUMB_INIT_SETSID"}
# every secret compose requires (``${NAME:?...}``): it fails loudly when one is unset
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "POSTGRES_AIRFLOW_PASSWORD",
                    "POSTGRES_PIPELINE_PASSWORD", "POSTGRES_SERVE_PASSWORD",
                    "REDIS_FEAST_PASSWORD", "REDIS_SERVE_PASSWORD", "REDIS_CELERY_PASSWORD",
                    "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD",
                    "SHOPFLOW_SERVING__AUTH_TOKEN")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")
SECRET_NAMES = re.compile(r"(PASSWORD|SECRET|FERNET|TOKEN|KEY)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_required_services_are_there(services: dict[str, Any]) -> None:
    assert REQUIRED <= set(services)


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "airflow-init":
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert check.get("interval") and check.get("retries"), f"{name} healthcheck incomplete"


def test_state_lives_in_named_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    assert {"postgres-data", "redis-data", "shopflow-home"} <= named
    mounts = {name: [str(v).split(":")[0] for v in s.get("volumes", [])]
              for name, s in services.items()}
    assert "postgres-data" in mounts["postgres"]
    assert "redis-data" in mounts["redis"]
    for name in (*AIRFLOW_SERVICES, "shopflow-serve"):
        assert "shopflow-home" in mounts[name], f"{name} does not share SHOPFLOW_HOME"
    for name, sources in mounts.items():
        for source in sources:
            assert source in named or source.startswith("./"), f"{name}: {source}"


def test_airflow_uses_celery_with_a_worker_that_scales(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        # the deploy task (gate 3) must reach the model service by its compose name
        assert env["SHOPFLOW_SERVING__HOST"] == "shopflow-serve", name
    worker = services["airflow-worker"]
    assert "container_name" not in worker, "a fixed container name blocks --scale"
    assert not any(":" in str(p) and not str(p).startswith("${") for p in
                   worker.get("ports", [])), "a fixed host port blocks --scale"
    depends = worker["depends_on"]
    assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"


def test_no_literal_passwords(services: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for name, service in services.items():
        for key, value in _environment(service).items():
            if SECRET_NAMES.search(key) and value:
                assert value.startswith("${"), f"{name}: {key} is a literal"
    # connection strings take their password from the environment too
    for url in re.findall(r"(?:postgresql[+\w]*|redis|db\+postgresql)://[^\s\"']+", text):
        userinfo = url.split("://", 1)[1].split("@")[0] if "@" in url else ""
        if ":" in userinfo:
            assert "${" in userinfo.split(":", 1)[1], f"literal password in {url}"
    # every required secret fails loudly when unset, and never falls back to a default
    for secret in REQUIRED_SECRETS:
        assert f"${{{secret}:?" in text, f"{secret} should be required (${{{secret}:?...}})"
        assert f"${{{secret}:-" not in text, f"{secret} must not have a default"


def test_env_example_lists_every_variable_and_holds_no_secret() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))  # $${X} is the container's
    example = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    for key, value in example.items():
        if SECRET_NAMES.search(key):
            assert value == "", f".env.example must not ship a value for {key}"
    gitignore = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore


def test_shopflow_variables_are_settings_we_understand(services: dict[str, Any]) -> None:
    from shopflow.settings import Settings

    for name, service in services.items():
        for key in _environment(service):
            if not key.startswith("SHOPFLOW_") or key in EXTRA_SHOPFLOW_VARS:
                continue
            path = key.removeprefix("SHOPFLOW_").lower().split("__")
            model: Any = Settings
            for part in path:
                fields = getattr(model, "model_fields", None)
                assert fields is not None and part in fields, f"{name}: {key} is not a setting"
                model = fields[part].annotation
    # and the values, with the secrets filled in, load into Settings as intended: the
    # pipeline on the warehouse, the model server without it (it reads published marts)
    probe = ("from shopflow.settings import load_settings; s = load_settings(); "
             "print(s.warehouse.backend, s.features.online_store, s.serving.host, "
             "s.serving.auth_token)")
    for name, expected in (("shopflow-serve", ["duckdb", "redis", "0.0.0.0", "x"]),
                           ("airflow-worker", ["postgres", "redis", "shopflow-serve", "x"])):
        sample = {k: _filled(v) for k, v in _environment(services[name]).items()
                  if k.startswith("SHOPFLOW_")}
        result = subprocess.run([sys.executable, "-c", probe],
                                env={**sample, "PATH": "/usr/bin:/bin"}, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == expected, name


def _filled(value: str) -> str:
    """``value`` with every ``${NAME...}`` replaced by its default, or ``x`` for a secret."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) == "-" else "x", value)


def test_airflow_variables_are_real_airflow_options(services: dict[str, Any],
                                                    tmp_path: Path) -> None:
    keys = sorted({key for s in services.values() for key in _environment(s)
                   if key.startswith("AIRFLOW__")})
    probe = (
        "import sys\n"
        "from airflow.configuration import conf\n"
        "known = conf.configuration_description\n"
        "bad = []\n"
        "for key in sys.argv[1:]:\n"
        "    _, section, option = key.split('__', 2)\n"
        "    options = known.get(section.lower(), {}).get('options', {})\n"
        "    if option.lower() not in options:\n"
        "        bad.append(key)\n"
        "print('BAD ' + ' '.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, *keys],
                            env={"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("BAD"))
    # [celery] options included: the Celery provider is in the lock the image installs
    assert line.split()[1:] == [], f"not Airflow options: {line.split()[1:]}"


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return command if isinstance(command, list) else str(command or "").split()


def test_every_command_is_one_of_ours(services: dict[str, Any], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shopflow.cli import cli

    airflow_commands = []
    for name, service in services.items():
        command = _command(service)
        if name == "postgres":
            assert not command, name
            continue
        if name == "redis":  # redis-server behind docker/redis/start.sh (the ACL users)
            assert command[:2] == ["sh", "/opt/shopflow/redis/start.sh"], command
            assert "./docker/redis:/opt/shopflow/redis:ro" in service["volumes"]
            assert "exec redis-server --aclfile" in (REPO / "docker/redis/start.sh").read_text()
            continue
        assert command, f"{name} has no command"
        if command[0] == "shopflow":
            result = CliRunner().invoke(cli, [*command[1:], "--help"])
            assert result.exit_code == 0, f"{name}: {command}: {result.output}"
        else:
            assert command[0] == "airflow", f"{name}: {command}"
            airflow_commands.append(command[1:])
    probe = (
        "import json, sys\n"
        "from airflow.cli.cli_parser import get_parser\n"
        "parser = get_parser()\n"
        "bad = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        parser.parse_args(args)\n"
        "    except SystemExit:\n"
        "        bad.append(args)\n"
        "print('BAD', json.dumps(bad))\n"
    )
    import json

    result = subprocess.run([sys.executable, "-c", probe, json.dumps(airflow_commands)],
                            env={"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BAD")), None)
    assert line is not None, result.stderr[-2000:]
    assert json.loads(line.removeprefix("BAD ")) == []
    assert ["celery", "worker"] in airflow_commands


def test_dockerfile_builds_one_image_for_every_role() -> None:
    text = DOCKERFILE.read_text()
    assert "requirements.lock" in text
    # the workers' provider comes from the lock, like everything else the image holds
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^apache-airflow-providers-celery==", lock, flags=re.MULTILINE)
    assert "COPY --chown=50000:0 dags ./dags" in text
    assert "COPY --chown=50000:0 plugins ./plugins" in text  # the Shopflow view
    assert re.search(r"^USER\s+50000", text, flags=re.MULTILINE), "must not run as root"
    assert "PASSWORD" not in text and "SECRET" not in text
    assert (REPO / "docker" / "entrypoint.sh").is_file()


def test_only_the_api_server_loads_the_shopflow_view(services: dict[str, Any]) -> None:
    """The plugin is the api-server's; task workers would import it for every task."""
    loading = {name for name, service in services.items()
               if "AIRFLOW__CORE__PLUGINS_FOLDER" in (service.get("environment") or {})}
    assert loading == {"airflow-apiserver"}
    assert services["airflow-apiserver"]["environment"]["AIRFLOW__CORE__PLUGINS_FOLDER"] == \
        "/opt/shopflow/plugins"
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS" in services["airflow-apiserver"][
        "environment"]  # the override keeps the common Airflow settings


def _dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_run_state_out_of_the_build_context() -> None:
    """``docker compose build`` sends the whole folder first: a SHOPFLOW_HOME is gigabytes."""
    patterns = set(_dockerignore_patterns())
    assert {".venv", ".shopflow", ".git", "src/shopflow/_code_version"} <= patterns


def test_dockerignore_excludes_nothing_the_dockerfile_copies() -> None:
    sources = [part for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY")
               for part in line.split()[1:-1] if not part.startswith("--")]
    assert "src" in sources and "requirements.lock" in sources
    for source in sources:
        for pattern in _dockerignore_patterns():
            assert not (source == pattern or source.startswith(pattern.rstrip("/") + "/")), \
                (source, pattern)
