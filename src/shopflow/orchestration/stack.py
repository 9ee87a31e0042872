"""A local Airflow 3 with every part as a child process: ``shopflow airflow up``.

Airflow 3 splits into the api-server (UI, REST API and the execution API the task
workers call back into), the scheduler (with the LocalExecutor's worker processes), the
dag-processor and the triggerer. They only work together when they share the metadata
DB, the DAG folder, the JWT secret and the execution API's address, so one function
(:func:`stack_environment`) builds the environment they all get, and :class:`AirflowStack`
starts them (plus Shopflow's model service, which the deploy task hot swaps and gate 3
checks) and stops them all. The integration tests use the same class on PostgreSQL.

With ``airflow.executor: CeleryExecutor`` (the executor of docker-compose.yml) the
scheduler queues tasks on a Redis broker and ``airflow.celery_workers`` ``airflow celery
worker`` processes run them, each under its own name (``worker-1@<host>``), which is what
a task instance's hostname says, so the UI shows which worker ran what.

The login is generated at every start (SimpleAuthManager with a passwords file written
0600): there is no default password to forget to change. This module imports no Airflow;
Airflow reads its configuration from the environment each child starts with.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow.processes import ChildProcess, stop_all, wait_until

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from shopflow.serving.process import ServiceProcess
    from shopflow.settings import Settings

AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
#: The servers of a local Airflow 3, in start order (the api-server first: the others'
#: task workers call its execution API).
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
MIGRATE_TIMEOUT = 300.0
#: Set in each Celery worker's environment: the hostname its task instances report.
WORKER_HOSTNAME_ENV = "SHOPFLOW_WORKER_HOSTNAME"
#: Airflow's ``[core] hostname_callable`` for the workers (this module's function).
HOSTNAME_CALLABLE = "shopflow.orchestration.stack.worker_hostname"


def plugins_folder() -> Path:
    """The repository's ``plugins/``: the Shopflow view (``shopflow.ui``) for the api-server."""
    return Path(__file__).resolve().parents[3] / "plugins"


def component_environment(env: Mapping[str, str], name: str) -> dict[str, str]:
    """One component's environment: the stack's, plus the plugins folder for the api-server.

    Only the api-server serves the Shopflow view; every task would otherwise import it
    (Airflow's task runner loads all plugins for each task's macros), about 2 s a task.
    """
    extra = {"AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder())} if name == "api-server" \
        else {}
    return {**env, **extra}


@dataclass(frozen=True)
class Login:
    """The UI/API admin login of one ``airflow up``."""

    user: str
    password: str


def generate_login(user: str) -> Login:
    """A fresh random password for ``user`` (never a default one)."""
    return Login(user=user, password=secrets.token_urlsafe(15))


def write_passwords_file(path: Path, login: Login) -> Path:
    """SimpleAuthManager's passwords file, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({login.user: login.password}, handle)
    os.chmod(path, 0o600)
    return path


def async_metadata_url(url: str) -> str | None:
    """The async URL Airflow needs beside a PostgreSQL one (None: Airflow derives it).

    Airflow derives ``postgresql+asyncpg`` from a ``postgresql`` URL and fails at start
    when asyncpg is not installed; psycopg 3 speaks both, so it is named instead.
    """
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://",
                   "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return None


def metadata_url_of(settings: Settings) -> str:
    """Airflow's metadata DB: ``airflow.metadata_url``, else SQLite in the Airflow home."""
    return settings.airflow.metadata_url or f"sqlite:///{settings.airflow_home / 'airflow.db'}"


def result_backend_of(settings: Settings) -> str:
    """Celery's result backend: ``airflow.result_backend``, else the metadata DB (``db+``)."""
    return settings.airflow.result_backend or f"db+{metadata_url_of(settings)}"


def worker_hostname() -> str:
    """The hostname a task instance reports (Airflow's ``[core] hostname_callable``).

    Every local Celery worker runs on the same host, so the machine's name alone would not
    tell them apart; each gets its Celery node name in :data:`WORKER_HOSTNAME_ENV`.
    Elsewhere this is Airflow's default, the fully qualified domain name.
    """
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()


def airflow_program() -> str:
    """The ``airflow`` script beside this interpreter."""
    return str(Path(sys.executable).with_name("airflow"))


def stack_environment(
    settings: Settings,
    *,
    login: Login,
    passwords_file: Path,
    port: int,
    host: str = "127.0.0.1",
    config_path: str | Path | None = None,
    dags_folder: Path | None = None,
    inherit_shopflow_env: bool = True,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The one environment every Airflow component (and its task workers) starts with.

    The caller's ``AIRFLOW*`` variables are dropped, so a stack never joins someone
    else's Airflow; ``SHOPFLOW_HOME``, ``BENTOML_HOME`` and ``PYTHONPATH`` (this source
    tree) reach the tasks, so they use the same state as the model service.
    """
    from shopflow.pipeline.runner import airflow_environment
    from shopflow.serving.process import free_port, service_env

    env = {k: v for k, v in service_env(settings, config_path=config_path,
                                        inherit_shopflow_env=inherit_shopflow_env).items()
           if not k.startswith("AIRFLOW")}
    env.update(airflow_environment(settings, dags_folder=dags_folder))
    metadata = metadata_url_of(settings)
    base_url = f"http://{host}:{port}"
    env.update({
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CORE__EXECUTOR": settings.airflow.executor,
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow.parallelism),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{login.user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        # shared by every component: tasks carry JWTs the api-server must accept
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        # the scheduler's and triggerer's log servers: free ports, so two stacks coexist
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(host)),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port(host)),
    })
    async_url = async_metadata_url(metadata)
    if async_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = async_url
    if settings.airflow.executor == "CeleryExecutor":
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": settings.airflow.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend_of(settings),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.airflow.celery_concurrency),
        })
    env.update(extra or {})
    return env


class AirflowStack:
    """api-server, scheduler, dag-processor, triggerer (and the model service) as children.

    With the CeleryExecutor, also ``airflow.celery_workers`` Celery workers (``worker-1``,
    ``worker-2``, ...).

    Use as a context manager, or call :meth:`stop` in a ``finally``: every child is
    stopped with its process group (SIGTERM, SIGKILL after ``stop_timeout``).

    Args:
        settings: whose SHOPFLOW_HOME, Airflow home and ``airflow`` section it uses.
        port: the api-server's port (default ``settings.airflow.port``).
        config_path: the YAML run config handed to tasks and the service.
        dags_folder: the DAG files (default: the repository's ``dags/``).
        with_service: also start ``bentoml serve`` on ``settings.serving.port``.
        inherit_shopflow_env: pass the caller's ``SHOPFLOW_*`` variables on (tests: no).
        extra_env: more variables for every child (e.g. faster scheduler polling).
        stop_timeout: seconds between SIGTERM and SIGKILL.
        components: which of :data:`COMPONENTS` to start (tests: the api-server alone).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        config_path: str | Path | None = None,
        dags_folder: Path | None = None,
        with_service: bool = True,
        inherit_shopflow_env: bool = True,
        extra_env: Mapping[str, str] | None = None,
        stop_timeout: float = 20.0,
        components: Sequence[str] = COMPONENTS,
    ) -> None:
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"components: unknown {sorted(unknown)}; known: {COMPONENTS}")
        self.component_names = tuple(c for c in COMPONENTS if c in components)
        self.settings = settings
        self.host = settings.airflow.host
        self.port = port or settings.airflow.port
        self.config_path = config_path
        self.login = generate_login(settings.airflow.admin_user)
        self.log_dir = settings.airflow_home / "logs" / "stack"
        passwords = write_passwords_file(settings.airflow_home / "passwords.json", self.login)
        self.env = stack_environment(
            settings, login=self.login, passwords_file=passwords, port=self.port,
            host=self.host, config_path=config_path, dags_folder=dags_folder,
            inherit_shopflow_env=inherit_shopflow_env, extra=extra_env,
        )
        self.with_service = with_service
        self.inherit_shopflow_env = inherit_shopflow_env
        self.stop_timeout = stop_timeout
        self.children: list[ChildProcess] = []
        self.service: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metadata_url(self) -> str:
        return self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]

    @property
    def executor(self) -> str:
        return self.settings.airflow.executor

    @property
    def worker_hostnames(self) -> list[str]:
        """The Celery workers' node names, also their task instances' hostname (none with
        the LocalExecutor)."""
        if self.executor != "CeleryExecutor":
            return []
        host = socket.getfqdn()
        return [f"worker-{i}@{host}" for i in range(1, self.settings.airflow.celery_workers + 1)]

    def components(self) -> list[ChildProcess]:
        """Every Airflow process of this stack, not started, in start order: the chosen
        servers (:data:`COMPONENTS`), then the Celery workers when a scheduler runs."""
        children = []
        for name in self.component_names:
            command = [airflow_program(), name]
            if name == "api-server":
                command += ["--host", self.host, "--port", str(self.port), "--workers", "1"]
            children.append(ChildProcess(name, command, env=component_environment(self.env, name),
                                         log_path=self.log_dir / f"{name}.log"))
        workers = self.worker_hostnames if "scheduler" in self.component_names else []
        for hostname in workers:
            name = hostname.partition("@")[0]
            # no log server per worker (they would all want one port): every worker
            # writes to the Airflow home's log folder, which the api-server reads directly
            command = [airflow_program(), "celery", "worker", "--celery-hostname", hostname,
                       "--concurrency", str(self.settings.airflow.celery_concurrency),
                       "--skip-serve-logs"]
            env = {**self.env, WORKER_HOSTNAME_ENV: hostname,
                   "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE}
            children.append(ChildProcess(name, command, env=env,
                                         log_path=self.log_dir / f"{name}.log"))
        return children

    def airflow(self, *args: str, timeout: float = MIGRATE_TIMEOUT) -> str:
        """Run one ``airflow`` CLI command in the stack's environment; returns its output.

        Raises:
            RuntimeError: it exited non-zero (with the output's tail).
        """
        proc = subprocess.run([airflow_program(), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{(proc.stdout + proc.stderr)[-3000:]}")
        return proc.stdout

    def start(self, *, timeout: float = 240.0, reserialize: bool = False) -> AirflowStack:
        """Migrate the metadata DB, start every component, wait for a healthy api-server.

        Args:
            reserialize: serialize the DAGs into the metadata DB first (``airflow dags
                reserialize``, what the dag-processor does), for an api-server started alone.
        """
        self.settings.ensure_dirs()
        self.airflow("db", "migrate")
        if reserialize:
            self.airflow("dags", "reserialize")
        try:
            for child in self.components():
                self.children.append(child.start())
            if self.with_service:
                self._start_service()
            wait_until(self.healthy, timeout=timeout, what="a healthy Airflow api-server",
                       children=self.children)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_service(self) -> None:
        from shopflow.serving.process import ServiceProcess

        self.service = ServiceProcess(
            self.settings, port=self.settings.serving.port, config_path=self.config_path,
            log_path=self.log_dir / "model-service.log",
            inherit_shopflow_env=self.inherit_shopflow_env,
        )
        self.service.start(wait=180)

    def healthy(self) -> bool:
        """Whether the api-server answers its health endpoint (metadatabase healthy)."""
        import httpx

        try:
            response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=3)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        return bool(response.json().get("metadatabase", {}).get("status") == "healthy")

    def token(self) -> str:
        """A JWT for the REST API (and the UI's ``_token`` cookie) for the admin login."""
        import httpx

        response = httpx.post(f"{self.url}/auth/token",
                              json={"username": self.login.user, "password": self.login.password},
                              timeout=15)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def client(self, *, timeout: float = 30.0) -> httpx.Client:
        """An ``httpx.Client`` on the REST API, logged in as the admin."""
        import httpx

        return httpx.Client(base_url=self.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.token()}"})

    def exited(self) -> ChildProcess | None:
        """The first component that is no longer running, if any."""
        for child in self.children:
            if child.exit_code() is not None:
                return child
        return None

    def stop(self) -> None:
        """Stop every component and the service (SIGTERM, then SIGKILL after the bound)."""
        service, self.service = self.service, None
        try:
            if service is not None:
                service.stop(timeout=self.stop_timeout)
        finally:
            stop_all(self.children, timeout=self.stop_timeout)

    def pids(self) -> dict[str, int]:
        """Each running child's pid (the service's too), for a person or a test."""
        found = {c.name: c.pid for c in self.children if c.pid is not None}
        if self.service is not None and self.service.process is not None:
            found["model-service"] = self.service.process.pid
        return found

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
