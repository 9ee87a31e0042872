"""The propensity model's serving runtime: which model answers ``POST /predict``.

One :class:`ServingRuntime` lives in each service worker. It follows the ledger's
production alias like every served model does (:mod:`shopflow.serving.alias_follower`:
load beside, check, swap by one assignment, or refuse and record a ``rejection`` so gate 3
can roll back); a background thread polls it, and the recommender's alias, every
``serving.reload_interval`` seconds. What is specific to this model lives here: its check
(it loads, Feast serves its feature service with all its columns, golden requests give
finite probabilities in [0, 1], whether its compiled predictor still agrees with the
library, and whether the fast matrix path gives the same scores),
shadow scoring of a challenger, the challenger of an A/B test (``serving.experiment``:
loaded and checked like any served model; :mod:`shopflow.serving.experiment`), and the
answers of ``/predict``, ``/readyz`` and ``/metadata``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.contract import GOLDEN_UNKNOWN_ID, PROPENSITY_MODEL, RECOMMENDER_MODEL
from shopflow.privacy import IdHasher
from shopflow.serving.alias_follower import AliasFollower, ModelRefused
from shopflow.serving.online import OnlineFeatures, snapshot_user_ids
from shopflow.serving.prediction_log import AS_OF_REFRESH_SECONDS
from shopflow.serving.served import ServedModel, load_served_model, missing_if_infinite

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shopflow.serving.experiment import RunningExperiment
    from shopflow.serving.packaged import BentoPin
    from shopflow.serving.prediction_log import PredictionLog
    from shopflow.serving.shadow import ShadowScorer
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: Known shoppers remembered from live traffic as golden ids for the next swap check.
RECENT_KNOWN_IDS = 16


class NoProductionModel(RuntimeError):
    """Nothing to serve: the ledger names no production model, or it was refused."""


class ServingRuntime(AliasFollower[ServedModel]):
    """Holds the served propensity model, swaps it when the ledger's production alias moves.

    Args:
        settings: Shopflow settings (ledger URL, model store, Feast, serving knobs).
        features: online feature reader (default: the Feast part's).
        poll: start the background alias poller in :meth:`start`.
        freeze_heap: ``gc.freeze()`` after each hot swap (the service process; see
            ``shopflow.serving.options.settle_heap``).
        pin: the models a Bento carries (:mod:`shopflow.serving.packaged`, resolved to
            their folders): serve those, follow no alias, never open the ledger; no shadow
            scoring and no gate 3 at start (the Bento is a fixed release). The poller
            still runs: it refreshes the recommender's popularity fallback.
    """

    kind = PROPENSITY_MODEL
    label = "model"

    def __init__(
        self,
        settings: Settings,
        *,
        features: OnlineFeatures | None = None,
        poll: bool = True,
        freeze_heap: bool = False,
        pin: BentoPin | None = None,
    ) -> None:
        super().__init__(settings.ledger_url, packaged=pin is not None,
                         pinned_version=pin.propensity.version if pin is not None else None)
        self.pin = pin
        self.settings = settings
        self.features = features or OnlineFeatures(settings)
        self.hash_id = IdHasher(settings.home_dir)
        self.recent_known_ids: deque[str] = deque(maxlen=RECENT_KNOWN_IDS)
        self.shadow: ShadowScorer | None = None
        self.prediction_log: PredictionLog | None = None
        # the A/B test's challenger as requests see it (None: no test runs; see
        # _refresh_experiment), and why not when it is None
        self.experiment: RunningExperiment | None = None
        self.experiment_state = "off" if not settings.serving.experiment.enabled else "starting"
        #: the data time the online features describe (the user view's materialization
        #: watermark, epoch seconds; None: unknown), logged with each answer as ``as_of``
        self.as_of: float | None = None
        self._as_of_read = -math.inf
        self._poll = poll
        from shopflow.serving.recommender import RecommenderRuntime

        # POST /recommend: the ledger's recommender, polled by the same thread
        self.recommender = RecommenderRuntime(
            settings, packaged=pin is not None,
            pin=pin.recommender if pin is not None else None)
        self._unusable_challengers: set[str] = set()
        self._snapshot_ids: list[str] | None = None
        self._started = False
        self._freeze_heap = freeze_heap
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Load the production model now (if any), then keep polling in the background."""
        if self.settings.serving.shadow and not self.packaged:
            from shopflow.serving.shadow import ShadowScorer, shadow_dir

            self.shadow = ShadowScorer(
                directory=shadow_dir(self.settings.reports_dir),
                score=self.score,
                hash_id=self.hash_id,
                keep=self.settings.privacy.retention.logs,
            )
            self.shadow.start()
        if self.settings.serving.prediction_log:
            from shopflow.serving.prediction_log import PredictionLog

            self.prediction_log = PredictionLog(self.settings, hash_id=self.hash_id)
            self.prediction_log.start()
        self.poll_once()
        self.poll_recommender()
        self.refresh_as_of()
        self._started = True
        if self._poll and self._thread is None:
            # packaged too: a pin-less Bento's popularity fallback follows the published marts
            self._thread = threading.Thread(
                target=self._run, name="shopflow-alias-poller", daemon=True
            )
            self._thread.start()
            if not self.packaged:  # a Bento is a fixed release: no ledger, no gate 3
                from shopflow.serving.pending import deploy_pending_at_start

                deploy_pending_at_start(self.settings)  # gate 3 for a run that found no service

    def stop(self) -> None:
        """Stop polling and shadow scoring, write out the prediction log (bounded waits)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.settings.serving.reload_interval * 2))
            self._thread = None
        if self.shadow is not None:
            self.shadow.stop()
        if self.prediction_log is not None:
            self.prediction_log.stop()
        self.close()
        self.recommender.close()

    def _run(self) -> None:
        interval = self.settings.serving.reload_interval
        while not self._stop.wait(interval):
            try:
                self.poll_once()
            except Exception:  # the poller must outlive any one bad poll
                logger.exception("alias poll failed; trying again in %.1f s", interval)
            self.poll_recommender()
            self.refresh_as_of()

    def refresh_as_of(self, *, force: bool = False) -> None:
        """Re-read the online user view's materialization watermark into :attr:`as_of`,
        at most every :data:`AS_OF_REFRESH_SECONDS` (never raises: serving goes on with
        the last value, or None, when the registry cannot be read)."""
        now = time.monotonic()
        if not force and now - self._as_of_read < AS_OF_REFRESH_SECONDS:
            return
        self._as_of_read = now
        try:
            from shopflow.features.materialization import get_watermark
            from shopflow.features.schema import USER_TABLE

            watermark = get_watermark(self.features.store(), USER_TABLE.view_name)
        except Exception as exc:
            logger.info("materialization watermark unavailable: %s", exc)
            return
        self.as_of = None if watermark is None else watermark.timestamp()

    def poll_recommender(self) -> None:
        """One poll of the recommender's alias (never raises: /predict must keep serving)."""
        swaps = self.recommender.swaps
        try:
            self.recommender.poll_once()
        except Exception:
            logger.exception("recommender poll failed; trying again next poll")
        if self.recommender.swaps != swaps and self._started and self._freeze_heap:
            from shopflow.serving.options import settle_heap

            settle_heap(collect=False)  # keep the new lists out of full GC walks

    # ---- what the alias follower needs to know about this model ------------------------
    def _load(self, version: str) -> ServedModel:
        if self.pin is not None:
            from shopflow.serving.served import load_packaged_model

            return load_packaged_model(self.pin.propensity)
        return load_served_model(self.settings, version)

    def _check(self, candidate: ServedModel) -> ServedModel:
        candidate = self.check_compiled(candidate)
        return dataclasses.replace(candidate, fast_path=True) if self.check(candidate) \
            else candidate

    def _version_of(self, model: ServedModel) -> str:
        return model.version

    def _describe(self, model: ServedModel) -> str:
        return f"{model.family}, feature service {model.feature_service}"

    def _after_swap(self, model: ServedModel) -> None:
        if self._started and self._freeze_heap:
            from shopflow.serving.options import settle_heap

            settle_heap(collect=False)  # keep the new model out of full GC walks

    def _after_poll(self, target: str | None) -> None:
        if self.shadow is not None:
            self._refresh_challenger()
        if self.settings.serving.experiment.enabled:
            try:
                self._refresh_experiment()
            except Exception:  # e.g. the ledger went away mid-poll: keep the test as it is
                logger.exception("A/B test refresh failed; trying again next poll")

    def golden_user_ids(self) -> list[str]:
        """Ids for the swap check: recently served known users (else a few from the
        offline feature snapshot) plus one unknown id."""
        known = list(dict.fromkeys(self.recent_known_ids))
        if not known:
            if self._snapshot_ids is None:
                self._snapshot_ids = snapshot_user_ids(self.settings, 5)
            known = self._snapshot_ids
        return [*known, GOLDEN_UNKNOWN_ID]

    def check_compiled(self, candidate: ServedModel) -> ServedModel:
        """``candidate`` keeping its compiled predictor only if it agrees with the library.

        Compared on the golden users' online rows plus probe rows (missing, zero and
        extreme values): see :meth:`ServedModel.check_compiled`. Golden rows that cannot
        be read leave the probe rows (:meth:`check` then refuses the model anyway).
        """
        if candidate.compiled is None:
            return candidate
        if not self.settings.serving.compiled:
            return dataclasses.replace(candidate, compiled=None, inference_reason=(
                "serving.compiled is false: the library's predictor serves"))
        try:
            frame = self.features.get(self.golden_user_ids(), candidate.feature_service)
            rows = candidate.model.matrix(frame)
        except Exception as exc:
            logger.info("no golden rows for the compiled check of %s: %s",
                        candidate.version, exc)
            rows = np.empty((0, len(candidate.feature_names)))
        return candidate.check_compiled(rows)

    def check(self, candidate: ServedModel) -> bool:
        """Prove ``candidate`` can serve before it takes traffic.

        Returns:
            Whether the fast matrix path may serve it (it gave identical golden scores).

        Raises:
            ModelRefused: Feast lacks its feature service or columns, or golden requests
                fail or give a probability that is not finite or outside [0, 1].
        """
        self.features.check_service(candidate.feature_service, candidate.feature_names)
        ids = self.golden_user_ids()
        try:
            frame = self.features.get(ids, candidate.feature_service)
            # the model's own answer (no cold-start fallback), on the rows as served: an
            # infinite online value reads as missing, so one corrupt shopper cannot get
            # every model refused; a model that answers NaN to missing values is refused
            rows = missing_if_infinite(candidate.model.matrix(frame))
            raw = np.clip(np.asarray(candidate.model.predictor.predict(rows),
                                     dtype=np.float64).reshape(-1), 0.0, 1.0)
            probabilities, _ = candidate.score(frame)
        except Exception as exc:
            raise ModelRefused(f"golden request failed: {type(exc).__name__}: {exc}") from exc
        for values, what in ((raw, "raw scores"), (probabilities, "served scores")):
            if values.shape != (len(ids),):
                raise ModelRefused(
                    f"golden request: {what} have shape {values.shape} for {len(ids)} users"
                )
            if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
                raise ModelRefused(
                    f"golden request: {what} are not finite probabilities in [0, 1]: "
                    f"{values[:5].tolist()}"
                )
        if not math.isfinite(candidate.cold_start_probability):
            raise ModelRefused("cold-start probability is not finite")
        return self._fast_path_agrees(candidate, ids, probabilities)

    def _fast_path_agrees(self, candidate: ServedModel, ids: list[str],
                          reference: np.ndarray) -> bool:
        """Whether the matrix path gives exactly the reference path's scores for this model."""
        try:
            matrix, known = self.features.matrix(ids, candidate.feature_service,
                                                 candidate.feature_names)
            fast = candidate.score_matrix(matrix, known)
        except Exception as exc:
            logger.info("fast path unavailable for %s: %s", candidate.version, exc)
            return False
        # also the model call alone, on rows with values and gaps, known or not
        rng = np.random.default_rng(0)
        synthetic = rng.gamma(1.5, 5.0, size=(8, len(candidate.feature_names)))
        synthetic[::3, 0] = np.nan
        try:
            import pandas as pd

            # the frame path with the predictor that serves (compiled or library)
            expected, _ = candidate.score(
                pd.DataFrame(synthetic, columns=list(candidate.feature_names)))
            matches = np.array_equal(
                candidate.score_matrix(synthetic, np.ones(len(synthetic), dtype=bool)), expected)
        except Exception as exc:
            logger.info("fast path unavailable for %s: %s", candidate.version, exc)
            return False
        if not matches or not np.array_equal(fast, reference):
            logger.warning("fast path disagrees with predict_proba for %s; using the frame path",
                           candidate.version)
            return False
        return True

    def _refresh_challenger(self) -> None:
        assert self.shadow is not None
        version = self.settings.serving.shadow_version or self._newest_challenger()
        current = self.shadow.challenger
        if version is None or version == self.version:
            self.shadow.challenger = None
            return
        if current is not None and current.version == version:
            return
        if version in self._unusable_challengers:
            return
        try:
            challenger = self.admit(version)
        except Exception as exc:
            logger.warning("shadow challenger %s not usable: %s", version, exc)
            self._unusable_challengers.add(version)
            self.shadow.challenger = None
            return
        self.shadow.challenger = challenger
        logger.info("shadow mode: scoring challenger %s beside %s", version, self.version)

    def _refresh_experiment(self) -> None:
        """Start, keep, pause or end the A/B test after a poll (the poller thread).

        The test runs only while production is served: it pauses while a candidate is
        deploy pending (gate 3 measures the candidate on all traffic, an experiment's
        promotion included) and ends once the ledger holds its ``stop`` (a rejection with
        ``details.stage == "experiment"``) or the challenger reached production.
        """
        from shopflow.serving.experiment import EXPERIMENT_STAGE, RunningExperiment, salt_key

        config = self.settings.serving.experiment
        ended = {e.version for e in self._ledger.events(kind="rejection", limit=200)
                 if e.details.get("stage") in (EXPERIMENT_STAGE, "post_deploy")}
        version = config.challenger or self._newest_challenger(after_production=True,
                                                                  ended=ended)
        pending = self._ledger.pending()
        state = None
        if pending is not None:
            state = f"paused: candidate {pending.version} is deploy pending"
        elif version is None:
            state = "no challenger: no candidate besides production"
        elif version == self.version:
            state = f"ended: challenger {version} is production"
        elif version in ended:
            state = f"ended: the ledger holds the decision on challenger {version}"
        elif version in self._unusable_challengers:
            state = f"challenger {version} is not usable (see the log)"
        if state is not None:
            self.experiment, self.experiment_state = None, state
            return
        assert version is not None
        current = self.experiment
        if current is not None and current.challenger.version == version:
            return
        try:
            challenger = self.admit(version)
        except Exception as exc:
            logger.warning("experiment challenger %s not usable: %s", version, exc)
            self._unusable_challengers.add(version)
            self.experiment = None
            self.experiment_state = f"challenger {version} is not usable: {exc}"
            return
        self.experiment = RunningExperiment(challenger=challenger, share=config.share,
                                            key=salt_key(config.salt))
        self.experiment_state = "running"
        logger.info("A/B test: challenger %s answers %.1f%% of shoppers, %s the rest", version,
                    100 * config.share, self.version)

    def _newest_challenger(self, *, after_production: bool = False,
                           ended: set[str | None] | None = None) -> str | None:
        """The newest candidate that is not production, not unusable and not ``ended``.

        With ``after_production`` (the A/B test) only candidates registered after the
        production model count: an older one, a former champion included, is no challenger.
        """
        production = self.version
        skip = self._unusable_challengers | (ended or set())
        for record in self._ledger.candidates(limit=20):
            if record.version == production:
                if after_production:
                    return None
                continue
            if record.version not in skip:
                return record.version
        return None

    # ---- requests ----------------------------------------------------------------------
    def predict(self, user_ids: Sequence[str]) -> tuple[ServedModel, np.ndarray, np.ndarray]:
        """Score ``user_ids`` with the model being served when the call starts.

        Returns:
            ``(model, probabilities, known)``.

        Raises:
            NoProductionModel: nothing to serve yet.
        """
        served, probabilities, known, _ = self.predict_with_features(user_ids)
        return served, probabilities, known

    def predict_with_features(self, user_ids: Sequence[str]
                              ) -> tuple[ServedModel, np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`predict`, with the feature matrix the model scored (for the
        prediction log): ``len(user_ids) x len(model.feature_names)``, NaN where missing.

        Raises:
            NoProductionModel: nothing to serve yet.
        """
        served = self.current  # read once: a concurrent swap cannot change this request
        if served is None:
            raise NoProductionModel(self.unavailable_reason())
        probabilities, known, matrix = self._score(served, user_ids)
        if known.any() and len(self.recent_known_ids) < RECENT_KNOWN_IDS:
            self.recent_known_ids.append(user_ids[int(np.argmax(known))])
        if self.shadow is not None:
            self.shadow.submit(user_ids, served, probabilities.tolist(), known.tolist())
        return served, probabilities, known, matrix

    def score(self, served: ServedModel, user_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities, known)`` of ``user_ids`` under ``served`` (fast path if verified)."""
        probabilities, known, _ = self._score(served, user_ids)
        return probabilities, known

    def score_with_features(self, served: ServedModel, user_ids: Sequence[str]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(probabilities, known, feature matrix)`` of ``user_ids`` under ``served`` (the
        A/B test's challenger arm: no shadow scoring, no golden ids from it)."""
        return self._score(served, user_ids)

    def _score(self, served: ServedModel, user_ids: Sequence[str]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if served.fast_path:
            matrix, known = self.features.matrix(user_ids, served.feature_service,
                                                 served.feature_names)
            return served.score_matrix(matrix, known), known, matrix
        frame = self.features.get(user_ids, served.feature_service)
        probabilities, known = served.score(frame)
        return probabilities, known, served.model.matrix(frame)  # what the model scored

    def unavailable_reason(self) -> str:
        """Why there is no model to serve, for 503 answers."""
        if self.last_poll_error and self.current is None:
            return f"no model loaded: {self.last_poll_error}"
        if self.alias_version is None:
            return "no model in production: the ledger's production alias is empty (train and promote one)"
        refusal = self.alias_refusal()
        if refusal is not None:
            return f"production model {refusal.version} was refused: {refusal.reason}"
        return f"production model {self.alias_version} is not loaded yet"

    def ready(self) -> tuple[bool, str]:
        """Model loaded and its online features reachable (for /readyz)."""
        served = self.current
        if served is None:
            return False, self.unavailable_reason()
        return self.features.reachable(served.feature_service, served.feature_names)

    def metadata(self) -> dict[str, Any]:
        """The ``GET /metadata`` object, JSON-safe: a metric that is NaN or infinite (an
        AUC on a slice with one class) reads as null instead of failing the answer."""
        from shopflow.jsonable import jsonable

        served = self.current
        shadow = self.shadow
        answer: dict[str, Any] = jsonable({
            "model_version": served.version if served else None,
            "model": served.describe() if served else None,
            "production_alias": self.alias_version,
            "refused": [r.asdict() for r in self.refusals],
            "swaps": self.swaps,
            "reload_interval": self.settings.serving.reload_interval,
            "max_batch": self.settings.serving.max_batch,
            "ledger_error": self.last_poll_error,
            "packaged": None if self.pin is None else {
                "propensity": self.pin.propensity.tag,
                RECOMMENDER_MODEL: self.pin.recommender.tag if self.pin.recommender else None,
                "packaged_at": self.pin.packaged_at,
                "code_version": self.pin.code_version,
            },
            RECOMMENDER_MODEL: self.recommender.metadata(),
            "prediction_log": None if self.prediction_log is None else {
                "directory": str(self.prediction_log.directory),
                "written": self.prediction_log.written,
                "dropped": self.prediction_log.dropped,
                "failed": self.prediction_log.failed,
                "pending": self.prediction_log.pending,
            },
            "experiment": None if not self.settings.serving.experiment.enabled else {
                "state": self.experiment_state,
                "challenger_version": (self.experiment.challenger.version
                                       if self.experiment is not None else None),
                "share": self.settings.serving.experiment.share,
            },
            "shadow": None
            if shadow is None
            else {
                "challenger_version": shadow.challenger.version if shadow.challenger else None,
                "logged": shadow.logged,
                "dropped": shadow.dropped,
                "failed": shadow.failed,
            },
        })
        return answer
