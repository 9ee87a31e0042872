"""docker/redis's ACL users on the real Redis server: Feast and Celery apart, serving read-only.

The ACL is rendered by the deployment's own script (``docker/redis/start.sh --render``)
with throwaway user names, a throwaway Feast project and random passwords, and each of its
users is created with ``ACL SETUSER`` on the local server; the rendered ``user default
off`` line is checked, never applied (other tests share this server). The users are
deleted, and the project's keys removed, afterwards.

Feast itself writes the online store as the pipeline's user, the service's readers (the
direct hot-path read and Feast's own) read it as the server's user, and the server's
user is refused every write and every key that is not Feast's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis import Redis

pytestmark = [pytest.mark.integration, pytest.mark.redis]

START = Path(__file__).resolve().parents[2] / "docker" / "redis" / "start.sh"
HOST, PORT = "127.0.0.1", 6379


@dataclass
class Users:
    project: str
    env: dict[str, str]
    lines: list[str]

    def url(self, who: str) -> str:
        return (f"redis://{self.env[f'REDIS_{who}_USER']}:{self.env[f'REDIS_{who}_PASSWORD']}"
                f"@{HOST}:{PORT}/0")

    def client(self, who: str) -> Redis:
        from redis import Redis

        return Redis(host=HOST, port=PORT, username=self.env[f"REDIS_{who}_USER"],
                     password=self.env[f"REDIS_{who}_PASSWORD"])


@pytest.fixture
def users(redis_url: str) -> Iterator[Users]:
    from redis import Redis

    if shutil.which("awk") is None:
        pytest.skip("awk is not installed")
    tag = f"t{uuid.uuid4().hex[:8]}"
    env = {"FEAST_PROJECT": tag}
    for who in ("FEAST", "SERVE", "CELERY"):
        env[f"REDIS_{who}_USER"] = f"{tag}-{who.lower()}"
        env[f"REDIS_{who}_PASSWORD"] = secrets.token_urlsafe(24)
    rendered = subprocess.run(["sh", str(START), "--render"], capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"], **env}, timeout=30, check=True)
    lines = rendered.stdout.splitlines()
    admin = Redis(host=HOST, port=PORT)
    try:
        for line in lines:
            _, name, *rules = line.split()
            if name.startswith(tag):  # never `default`: other users of this server need it
                admin.execute_command("ACL", "SETUSER", name, "reset", *rules)
        yield Users(tag, env, lines)
    finally:
        for who in ("FEAST", "SERVE", "CELERY"):
            admin.execute_command("ACL", "DELUSER", env[f"REDIS_{who}_USER"])
        for key in admin.scan_iter(match=f"*{tag}", count=1000):
            admin.delete(key)
        admin.delete(f"{tag}:celery-queue")
        admin.close()


def test_the_rendered_acl_turns_the_default_user_off(users: Users) -> None:
    assert users.lines[0] == "user default off"
    assert len(users.lines) == 4
    for line in users.lines[1:]:
        assert "-@dangerous" in line and " >" in line


def test_feast_writes_as_the_pipeline_and_the_server_only_reads(users: Users,
                                                                tmp_path: Path) -> None:
    from redis.exceptions import NoPermissionError

    from shopflow.features.online import get_online_matrix, get_online_user_features
    from shopflow.features.schema import USER_TABLE
    from shopflow.serving.sandbox import (
        SANDBOX_FEATURES,
        synthetic_user_features,
        write_online_features,
    )
    from shopflow.settings import Settings, load_settings

    def settings(who: str) -> Settings:
        return load_settings(home=tmp_path / "home", features={
            "online_store": "redis", "redis_url": users.url(who), "project": users.project})

    frame = synthetic_user_features(5, seed=1)
    write_online_features(settings("FEAST"), frame)  # Feast's own writer, as the pipeline
    ids = [*frame["user_id"].astype(str), "nobody"]
    served = settings("SERVE")
    matrix, known = get_online_matrix(served, USER_TABLE, ids, feature_service="propensity_v2",
                                      feature_names=list(SANDBOX_FEATURES))
    assert known.tolist() == [True] * 5 + [False]
    assert matrix[0].tolist() == pytest.approx(
        frame.loc[0, list(SANDBOX_FEATURES)].astype(float).tolist())
    through_feast = get_online_user_features(served, ids[:2], feature_service="propensity_v2",
                                             direct=False)
    assert through_feast["known"].tolist() == [True, True]

    serve = users.client("SERVE")
    key = next(iter(serve.scan_iter(match=f"*{users.project}", count=1000)), None)
    assert key is not None
    for attempt in (lambda: serve.hset(key, "x", "1"), lambda: serve.delete(key),
                    lambda: serve.expire(key, 1), lambda: serve.get("celery"),
                    lambda: serve.lpush("celery", "task"), lambda: serve.flushdb(),
                    lambda: serve.keys("*"), lambda: serve.config_get("*"),
                    lambda: serve.execute_command("ACL", "LIST")):
        with pytest.raises(NoPermissionError):
            attempt()
    serve.close()


def test_feast_and_celery_users_are_apart(users: Users) -> None:
    from redis.exceptions import NoPermissionError

    feast = users.client("FEAST")
    for attempt in (lambda: feast.lpush("celery", "task"), lambda: feast.get("_kombu.binding"),
                    lambda: feast.flushall(), lambda: feast.execute_command("ACL", "LIST")):
        with pytest.raises(NoPermissionError):
            attempt()
    feast.close()
    celery = users.client("CELERY")
    queue = f"{users.project}:celery-queue"
    celery.lpush(queue, b'{"task": "x"}')
    assert celery.brpop([queue], timeout=1) == (queue.encode(), b'{"task": "x"}')
    for attempt in (lambda: celery.flushdb(), lambda: celery.config_get("*"),
                    lambda: celery.keys("*")):
        with pytest.raises(NoPermissionError):
            attempt()
    celery.close()
