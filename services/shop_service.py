"""The Shopflow model service (docs/DESIGN.md §5), served with ``bentoml serve``.

``POST /predict`` scores shoppers with the production model named by the ledger; the model
comes from the BentoML model store in ``SHOPFLOW_HOME`` and is hot-swapped when the alias
moves (see ``shopflow.serving.runtime``). ``POST /recommend`` ranks items for one shopper
with the ledger's production recommender (precomputed lists, hot-swapped the same way;
popularity from the published marts while none is in production; see
``shopflow.serving.recommender``). ``GET /healthz`` says the process is alive,
``GET /readyz`` that a model is loaded and its online features answer, ``GET /metadata``
what is served and what was refused, ``GET /metrics`` the same and the traffic in
Prometheus text (``shopflow.serving.metrics``; ``serving.metrics``). Every served answer
goes to the prediction log (``shopflow.serving.prediction_log``; ``serving.prediction_log``)
off the request path, under the request id the answer carries in ``X-Request-ID``
(as a probe, kept out of monitoring's outcome joins, when the request carries the
deploy gate's ``X-Shopflow-Probe`` header).

Latency: BentoML's defaults cost most of the time of a small request. The service keeps
the BentoML contract but removes those costs with BentoML's own switches
(``shopflow.serving.options``, measured in ``benchmarks/bench_serving.py``): async
endpoints, Prometheus metrics and BentoML's access log off (Shopflow writes its own,
privacy-safe one), OpenTelemetry tracing excluded for the service's routes, a declared
pydantic output spec (fixed JSON media type) answered with one pre-serialised body, and
concurrent requests scored together (``shopflow.serving.batching``).

Packaged: in a Bento built by ``shopflow package`` (``shopflow.serving.bento``) this folder
holds a pin (``shopflow.serving.packaged``) naming the model versions the Bento carries;
the service declares them as BentoML models and serves those, scored by the same code,
instead of following the ledger's alias (the online features still come from the
configured Feast store).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bentoml
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopflow.contract import PROPENSITY_MODEL, RECOMMENDER_MODEL
from shopflow.serving.metrics import PredictionMetrics, counter_lines, model_lines
from shopflow.serving.middleware import STATE_KEY, FrontDoorMiddleware
from shopflow.serving.options import SERVICE_OPTIONS, settle_heap
from shopflow.serving.packaged import BentoPin, read_pin
from shopflow.serving.prediction_log import (
    LIVE,
    PROBE,
    ServedPredict,
    ServedRecommend,
)
from shopflow.serving.schemas import (
    PredictRequest,
    PredictResponse,
    RecommendRequest,
    RecommendResponse,
    UserId,
)
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.requests import Request

    from shopflow.serving.experiment import RunningExperiment

logger = logging.getLogger("shopflow.serving.service")

# Batches of up to this many ids are scored on the event loop itself (no thread hop, no
# GIL hand-offs); bigger ones go to the scoring thread so that one large request cannot
# stall every other connection of the worker.
INLINE_BATCH = 64
# Loop iterations a batch waits for requests already read off their sockets to join it.
GATHER_TICKS = 3
GIL_SWITCH_SECONDS = 0.0005
# The models a Bento carries (None: the repository's services/, which follows the ledger).
# Read at import because BentoML collects a service's models from its class body.
PIN = read_pin(Path(__file__).resolve().parent)


def _configure_logging() -> None:
    """Give Shopflow's loggers a stderr handler inside the worker (BentoML sets only its own)."""
    root = logging.getLogger("shopflow")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("SHOPFLOW_LOG_LEVEL", "INFO"))
        root.propagate = False


async def _metadata(request: Request) -> Response:
    service = bentoml.get_current_service()
    return JSONResponse(service.runtime.metadata())


def _service_metrics() -> Iterable[Iterable[str]]:
    """The service's part of ``GET /metrics`` (the front door adds the request families)."""
    service: ShopService = bentoml.get_current_service()
    return service.metric_sections()


# GET routes BentoML's @bentoml.api (POST only) cannot express, mounted on the service
http_routes = Starlette(routes=[Route("/metadata", _metadata, methods=["GET"])])


@bentoml.asgi_app(http_routes, path="/", name="shopflow_http")
@bentoml.service(name="shopflow_propensity", **SERVICE_OPTIONS)
class ShopService:
    """Purchase propensity (``/predict``) and recommendations (``/recommend``) for shoppers,
    from the ledger's production models and the online features.

    The BentoML service keeps the name ``shopflow_propensity`` it was published under:
    Bento tags and the service's own metrics carry it.
    """

    if PIN is not None:  # packaged: the Bento carries these models (shopflow package)
        propensity_model = bentoml.models.BentoModel(PIN.propensity.tag)
        if PIN.recommender is not None:
            recommender_model = bentoml.models.BentoModel(PIN.recommender.tag)

    def __init__(self) -> None:
        from shopflow.serving.runtime import ServingRuntime

        _configure_logging()
        self.settings = load_settings()
        self.max_batch = self.settings.serving.max_batch
        self.runtime = ServingRuntime(self.settings, freeze_heap=True, pin=self._pin())
        self.runtime.start()
        self.prediction_log = self.runtime.prediction_log
        self.scores: PredictionMetrics | None = (
            PredictionMetrics() if self.settings.serving.metrics else None)
        # request ids: unique per worker start, cheap to make (no uuid per request)
        self._id_prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self.batcher = None
        # the A/B challenger's batcher, made on its first request: (challenger, batcher)
        self._challenger_batching: tuple[Any, Any] | None = None
        if self.settings.serving.batching:
            from shopflow.serving.batching import NaturalBatcher

            self.batcher = NaturalBatcher(self.runtime.predict_with_features,
                                          max_ids=self.max_batch,
                                          inline_ids=INLINE_BATCH, gather_ticks=GATHER_TICKS)
        # The poller, shadow and large-batch threads must hand the GIL back to the event
        # loop quickly (default 5 ms; with every batch scored in the thread, 0.5 ms gave
        # ~2.8x req/s at 1 user x 16 conns; now it matters for batches over INLINE_BATCH).
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        settle_heap()

    def _pin(self) -> BentoPin | None:
        """The Bento's pin with each declared model resolved to its folder (None: not packaged)."""
        if PIN is None:
            return None
        recommender = PIN.recommender
        if recommender is not None:
            recommender = recommender.resolved(self.recommender_model)
        return replace(PIN, propensity=PIN.propensity.resolved(self.propensity_model),
                       recommender=recommender)

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.runtime.stop()
        if self.batcher is not None:
            self.batcher.close()
        if self._challenger_batching is not None:
            self._challenger_batching[1].close()

    def __is_ready__(self) -> bool:
        ready, why = self.runtime.ready()
        if not ready:
            logger.warning("not ready: %s", why)
        return ready

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(
        self,
        user_ids: list[UserId],
        ctx: bentoml.Context,
    ) -> Response:
        """P(purchase within the horizon) per shopper; unknown shoppers get a cold start."""
        from shopflow.serving.runtime import NoProductionModel

        record = ctx.request.scope.get("state", {}).get(STATE_KEY, {})
        if not user_ids:
            return _error(ctx, 422, "user_ids: must hold at least one user id")
        if len(user_ids) > self.max_batch:
            return _error(ctx, 413, f"too many user_ids: {len(user_ids)} is over the limit of "
                               f"serving.max_batch={self.max_batch} per request")
        ids = [uid if isinstance(uid, str) else str(uid) for uid in user_ids]
        blank = next((i for i, uid in enumerate(ids) if not uid.strip()), None)
        if blank is not None:  # the online read strips ids: a blank one names no shopper
            return _error(ctx, 422, f"user_ids[{blank}]: must be a non-empty shopper id")
        experiment = self.runtime.experiment  # read once, like the served model
        if experiment is not None:
            return await self._predict_arms(ctx, record, ids, experiment)
        try:
            served, probabilities, known, features = await self._champion_answer(ids)
        except NoProductionModel as exc:
            return _error(ctx, 503, str(exc))
        except Exception:
            logger.exception("prediction failed for %d users", len(ids))
            return _error(ctx, 500, "prediction failed; see the server log")
        request_id = f"{self._id_prefix}-{next(self._ids)}"
        scores, flags = probabilities.tolist(), known.tolist()
        if self.prediction_log is not None:
            self.prediction_log.submit(ServedPredict(request_id, time.time(), served.version, ids,
                                                     probabilities, known, features,
                                                     served.feature_names, self.runtime.as_of,
                                                     PROBE if "probe" in record else LIVE))
        if self.scores is not None:
            self.scores.observe_predict(served.version, scores, flags)
        self._note_request(record, request_id, ids, unknown=len(ids) - sum(flags),
                           version=served.version)
        body = json.dumps(
            {
                "model_version": served.version,
                "predictions": [
                    {"user_id": uid, "purchase_probability": p, "known_user": k}
                    for uid, p, k in zip(ids, scores, flags, strict=True)
                ],
            },
            separators=(",", ":"),
        )
        return Response(body, media_type="application/json",
                        headers={"x-request-id": request_id})

    async def _predict_arms(self, ctx: bentoml.Context, record: dict[str, Any], ids: list[str],
                            experiment: RunningExperiment) -> Response:
        """``/predict`` during an A/B test: each shopper is answered by the model of its
        sticky arm (each model through its own micro-batcher), logged
        with the arm; every prediction names its ``model_version`` and ``arm``, and the
        top-level ``model_version`` is the challenger's only when it answered them all."""
        from shopflow.serving.experiment import CHALLENGER, CHAMPION
        from shopflow.serving.runtime import NoProductionModel

        challenger_rows = experiment.challenger_rows(ids)
        taken = set(challenger_rows)
        champion_rows = [i for i in range(len(ids)) if i not in taken]
        parts: list[tuple[str, list[int], Any, Any, Any, Any]] = []
        try:
            if champion_rows:
                answer = await self._champion_answer([ids[i] for i in champion_rows])
                parts.append((CHAMPION, champion_rows, *answer))
            if challenger_rows:
                group = [ids[i] for i in challenger_rows]
                challenger = experiment.challenger
                if self.batcher is not None:
                    answer = await self._challenger_batcher(challenger)(group)
                else:
                    import anyio.to_thread

                    answer = (challenger, *await anyio.to_thread.run_sync(
                        self.runtime.score_with_features, challenger, group))
                parts.append((CHALLENGER, challenger_rows, *answer))
        except NoProductionModel as exc:
            return _error(ctx, 503, str(exc))
        except Exception:
            logger.exception("prediction failed for %d users", len(ids))
            return _error(ctx, 500, "prediction failed; see the server log")
        request_id = f"{self._id_prefix}-{next(self._ids)}"
        now = time.time()
        predictions: list[dict[str, Any]] = [{} for _ in ids]
        unknown = 0
        for arm, rows, served, probabilities, known, features in parts:
            if self.prediction_log is not None:
                self.prediction_log.submit(ServedPredict(
                    request_id, now, served.version, [ids[i] for i in rows], probabilities,
                    known, features, served.feature_names, self.runtime.as_of,
                    PROBE if "probe" in record else LIVE,
                    arm=arm, rows=rows))
            scores, flags = probabilities.tolist(), known.tolist()
            if self.scores is not None:
                self.scores.observe_predict(served.version, scores, flags)
            unknown += len(flags) - sum(flags)
            for i, p, k in zip(rows, scores, flags, strict=True):
                predictions[i] = {"user_id": ids[i], "purchase_probability": p,
                                  "known_user": k, "model_version": served.version, "arm": arm}
        version = parts[0][2].version  # the champion's, unless it answered nobody
        self._note_request(record, request_id, ids, unknown=unknown, version=version)
        body = json.dumps({"model_version": version, "predictions": predictions},
                          separators=(",", ":"))
        return Response(body, media_type="application/json",
                        headers={"x-request-id": request_id})

    async def _champion_answer(self, ids: list[str]) -> tuple[Any, Any, Any, Any]:
        """The production model's (served, probabilities, known, features) for ``ids``.

        Micro-batched when batching is on; otherwise a small request is scored inline and
        a large one on a worker thread, so it does not hold up the event loop.
        """
        if self.batcher is not None:
            return await self.batcher(ids)
        if len(ids) <= INLINE_BATCH:
            return self.runtime.predict_with_features(ids)
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.runtime.predict_with_features, ids)

    def _note_request(self, record: dict[str, Any], request_id: str, ids: list[str], *,
                      unknown: int, version: str) -> None:
        """What the access log line says about a ``/predict`` request (ids hashed, 3 at most)."""
        record["request_id"] = request_id
        record["n_users"] = len(ids)
        record["users"] = [self.runtime.hash_id(uid) for uid in ids[:3]]
        record["unknown"] = unknown
        record["model_version"] = version

    def _challenger_batcher(self, challenger: Any) -> Any:
        """The micro-batcher of the A/B test's challenger (one per challenger: a new
        challenger gets a new one, the old one's thread is let go)."""
        from shopflow.serving.batching import NaturalBatcher

        current = self._challenger_batching
        if current is not None and current[0] is challenger:
            return current[1]
        score = self.runtime.score_with_features

        def score_challenger(ids: list[str]) -> tuple[Any, ...]:
            return (challenger, *score(challenger, ids))

        batcher = NaturalBatcher(score_challenger, max_ids=self.max_batch,
                                 inline_ids=INLINE_BATCH, gather_ticks=GATHER_TICKS)
        self._challenger_batching = (challenger, batcher)
        if current is not None:
            current[1].close(wait=False)
        return batcher

    @bentoml.api(route="/recommend", input_spec=RecommendRequest, output_spec=RecommendResponse)
    async def recommend(
        self,
        user_id: UserId,
        ctx: bentoml.Context,
        k: int = 10,
        exclude_purchased: bool = False,
    ) -> Response:
        """The top k items for one shopper; unknown shoppers get popular items (cold start)."""
        from shopflow.serving.recommender import NoRecommender

        record = ctx.request.scope.get("state", {}).get(STATE_KEY, {})
        uid = user_id if isinstance(user_id, str) else str(user_id)
        if not uid.strip():
            return _error(ctx, 422, "user_id: must be a non-empty shopper id")
        try:
            # a dictionary lookup and a slice: cheaper than a hop to a thread
            result = self.runtime.recommender.recommend(uid, k,
                                                        exclude_purchased=exclude_purchased)
        except NoRecommender as exc:
            return _error(ctx, 503, str(exc))
        except ValueError as exc:  # the recommender names the field (user_id or k)
            return _error(ctx, 422, str(exc))
        except Exception:
            logger.exception("recommendation failed")
            return _error(ctx, 500, "recommendation failed; see the server log")
        request_id = f"{self._id_prefix}-{next(self._ids)}"
        if self.prediction_log is not None:
            self.prediction_log.submit(ServedRecommend(request_id, time.time(), result,
                                                       self.runtime.as_of,
                                                       PROBE if "probe" in record else LIVE))
        if self.scores is not None:
            self.scores.observe_recommend(result.model_version, result.cold_start)
        record["request_id"] = request_id
        record["n_users"] = 1
        record["users"] = [self.runtime.hash_id(uid)]
        record["unknown"] = int(result.cold_start)
        record["model_version"] = result.model_version
        body = json.dumps(
            {
                "model_version": result.model_version,
                "user_id": uid,
                "cold_start": result.cold_start,
                "family": result.family,
                "snapshot_time": result.snapshot_time,
                "items": [{"item_id": i.item_id, "score": i.score, "rank": i.rank}
                          for i in result.items],
            },
            separators=(",", ":"),
        )
        return Response(body, media_type="application/json",
                        headers={"x-request-id": request_id})

    def metric_sections(self) -> list[list[str]]:
        """Models served, swaps, refusals, what was served and the logs, for ``/metrics``."""
        runtime, recommender = self.runtime, self.runtime.recommender
        current = recommender.current
        sections = [model_lines([
            (PROPENSITY_MODEL, runtime.version, runtime.swaps, runtime.refused),
            (RECOMMENDER_MODEL, current.model_version if current else None, recommender.swaps,
             recommender.refused),
        ])]
        if self.scores is not None:
            sections.append(self.scores.lines())
        shadow = runtime.shadow.log if runtime.shadow is not None else None
        for name, log in (("prediction_log", self.prediction_log), ("shadow", shadow)):
            if log is not None:
                sections.append(counter_lines(
                    f"shopflow_{name}_records_total", f"Records of the {name} by outcome.",
                    {"written": log.written, "dropped": log.dropped, "failed": log.failed}))
        return sections


def _error(ctx: bentoml.Context, status: int, message: str) -> Response:
    # BentoML copies ctx.response.status_code onto whatever the API returns
    ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status)


ShopService.add_asgi_middleware(FrontDoorMiddleware, from_settings=True, collect=_service_metrics)
