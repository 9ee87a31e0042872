"""docker-compose.yml's least privilege and start-up fixes, checked without a Docker engine.

Who gets which login (the public model server none of the pipeline's, no container but
postgres the superuser's), which names the compose URLs use against what
docker/postgres/roles.sql and docker/redis create, the model store read-only where it is
only read, ports on loopback unless configured, the serving token required, Airflow's
async metadata URL on an installed driver, writable mount points and the code version in
the image. ``docker compose config`` itself runs where the compose plugin is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler",
                    "airflow-dag-processor", "airflow-triggerer", "airflow-worker")
PIPELINE_SECRETS = ("POSTGRES_PASSWORD", "POSTGRES_AIRFLOW_PASSWORD",
                    "POSTGRES_PIPELINE_PASSWORD", "REDIS_FEAST_PASSWORD",
                    "REDIS_CELERY_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
                    "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD")
URL = re.compile(r"^(?P<scheme>[\w+]+)://(?P<user>[^:@/]*):(?P<secret>\$\{[A-Z_]+)")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (service.get("environment") or {}).items()}


def _login(url: str) -> tuple[str, str, str]:
    """``(scheme, user, secret variable)`` of a connection URL in the compose file."""
    match = URL.match(url)
    assert match, url
    return match["scheme"], match["user"], match["secret"].removeprefix("${")


def test_the_model_server_holds_none_of_the_pipelines_secrets(
        services: dict[str, Any]) -> None:
    env = _env(services["shopflow-serve"])
    text = yaml.safe_dump(env)
    for secret in PIPELINE_SECRETS:
        assert secret not in text, f"shopflow-serve sees {secret}"
    assert _login(env["SHOPFLOW_DATABASE_URL"])[1:] == ("shopflow_serve",
                                                        "POSTGRES_SERVE_PASSWORD")
    assert _login(env["SHOPFLOW_FEATURES__REGISTRY_URL"])[1] == "shopflow_serve"
    assert _login(env["SHOPFLOW_FEATURES__REDIS_URL"])[1:] == ("shopflow-serve",
                                                               "REDIS_SERVE_PASSWORD")
    assert not any(k.startswith("SHOPFLOW_WAREHOUSE") for k in env), "no warehouse access"


def test_only_postgres_knows_the_superuser(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name != "postgres":
            assert "POSTGRES_PASSWORD:" not in yaml.safe_dump(_env(service)), name
            assert "${POSTGRES_PASSWORD" not in yaml.safe_dump(service), name


def test_each_login_is_a_role_or_user_the_deployment_creates(services: dict[str, Any]) -> None:
    init = (REPO / "docker/postgres/init.sh").read_text()
    roles = dict(re.findall(r"-v (\w+)_role=(\w+)", init))
    acl_env = _env(services["redis"])
    template = (REPO / "docker/redis/users.acl.template").read_text()
    logins = set()
    for name in ("shopflow-serve", *AIRFLOW_SERVICES):
        for key, value in _env(services[name]).items():
            if "://" in value and "${" in value:
                logins.add((key, *_login(value.removeprefix("db+"))))
    for key, scheme, user, secret in logins:
        if scheme.startswith("postgresql"):
            role = {"POSTGRES_AIRFLOW_PASSWORD": "airflow",
                    "POSTGRES_PIPELINE_PASSWORD": "pipeline",
                    "POSTGRES_SERVE_PASSWORD": "serve"}[secret]
            assert roles[role] == user, (key, user)
        else:
            who = secret.removeprefix("REDIS_").removesuffix("_PASSWORD")
            assert acl_env[f"REDIS_{who}_USER"] == user, (key, user)
            assert f"user ${{REDIS_{who}_USER}} on >${{REDIS_{who}_PASSWORD}}" in template
    assert {scheme for _, scheme, _, _ in logins} >= {"postgresql+psycopg2", "postgresql",
                                                      "postgresql+psycopg", "redis"}
    assert "user default off" in template


def test_airflow_has_an_async_metadata_url_on_an_installed_driver(
        services: dict[str, Any]) -> None:
    import importlib.util

    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        sync = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        async_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"]
        assert async_url.startswith("postgresql+psycopg://"), name
        assert async_url.split("://", 1)[1] == sync.split("://", 1)[1], name
    assert importlib.util.find_spec("psycopg") is not None  # psycopg 3, in the lock
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^psycopg==", lock, flags=re.MULTILINE)


def test_the_model_store_is_read_only_where_it_is_only_read(services: dict[str, Any]) -> None:
    mount = "/var/lib/shopflow/bentoml/models"
    assert f"shopflow-models:{mount}:ro" in services["shopflow-serve"]["volumes"]
    for name in AIRFLOW_SERVICES:
        assert f"shopflow-models:{mount}" in services[name]["volumes"], name
    # it is where the model store lives: SHOPFLOW_HOME/bentoml/models
    from shopflow.settings import load_settings

    home = _env(services["shopflow-serve"])["SHOPFLOW_HOME"]
    assert str(load_settings(home=Path(home)).bentoml_home / "models") == mount


def test_published_ports_listen_on_loopback_unless_configured(
        services: dict[str, Any]) -> None:
    published = [(name, str(port)) for name, service in services.items()
                 for port in service.get("ports", [])]
    assert {name for name, _ in published} == {"airflow-apiserver", "shopflow-serve"}
    for name, port in published:
        assert re.fullmatch(r"\$\{[A-Z_]+_BIND:-127\.0\.0\.1\}:\$\{[A-Z_]+_PORT:-\d+\}:\d+",
                            port), f"{name}: {port}"


def test_the_serving_token_is_required(services: dict[str, Any]) -> None:
    for name in ("shopflow-serve", "airflow-worker"):  # the deploy task calls the service
        token = _env(services[name])["SHOPFLOW_SERVING__AUTH_TOKEN"]
        assert token.startswith("${SHOPFLOW_SERVING__AUTH_TOKEN:?"), name


def test_the_image_has_writable_mount_points_and_records_the_commit() -> None:
    dockerfile = (REPO / "docker/Dockerfile").read_text()
    assert "/opt/airflow/logs" in dockerfile and "/var/lib/shopflow/bentoml/models" in dockerfile
    assert "chown -R 50000:0 /opt/airflow /var/lib/shopflow" in dockerfile
    assert "ARG SHOPFLOW_GIT_SHA" in dockerfile
    from shopflow.registry.store import CODE_VERSION_FILE

    assert f"src/shopflow/{CODE_VERSION_FILE}" in dockerfile
    assert "GIT_SHA=" in (REPO / "Makefile").read_text()


def test_code_version_falls_back_to_the_commit_baked_into_the_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shopflow
    from shopflow.registry import store

    package = tmp_path / "shopflow"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(shopflow, "__file__", str(package / "__init__.py"))
    assert store.code_version() == f"shopflow-{shopflow.__version__}"  # no git, no file
    (package / store.CODE_VERSION_FILE).write_text("0123456789ab\n")
    assert store.code_version() == "0123456789ab"


def _compose_plugin() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    found = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                           timeout=60)
    return docker if found.returncode == 0 else None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = _compose_plugin()
    if docker is None:
        pytest.skip("no `docker compose` here (the docker CLI without its compose plugin, "
                    "or no docker at all); the file is checked by the tests above")
    env = tmp_path / ".env"
    lines = []
    for line in (REPO / "docker/.env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        lines.append(f"{key}={value or 'secret-' + key.lower()}" if sep and
                     not line.startswith("#") else line)
    env.write_text("\n".join(lines) + "\n")
    result = subprocess.run([docker, "compose", "--env-file", str(env), "-f", str(COMPOSE),
                             "config", "--quiet"], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    # and without the secrets, compose refuses to start
    missing = subprocess.run([docker, "compose", "--env-file", "/dev/null", "-f", str(COMPOSE),
                              "config", "--quiet"], capture_output=True, text=True, timeout=120,
                             cwd=REPO)
    assert missing.returncode != 0 and "set it in .env" in missing.stderr
