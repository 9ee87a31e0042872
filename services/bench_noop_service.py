"""No-op twins of the Shopflow service, for ``benchmarks/bench_serving.py`` only.

``NoopService`` has the same BentoML options, middleware and IO spec as
``ShopService`` but answers without features or a model: the floor of the
framework as Shopflow configures it. ``NoopDefaultService`` is a no-op with BentoML's
defaults (sync handler, dict output), the floor before tuning.
"""

from __future__ import annotations

import bentoml
from starlette.responses import Response

from shopflow.serving.middleware import FrontDoorMiddleware
from shopflow.serving.options import SERVICE_OPTIONS, settle_heap
from shopflow.serving.schemas import PredictRequest, PredictResponse, UserId

_ANSWER = b'{"model_version":"noop","predictions":[]}'


@bentoml.service(name="shopflow_noop", **SERVICE_OPTIONS)
class NoopService:
    """The Shopflow service's request path with nothing behind it."""

    def __init__(self) -> None:
        settle_heap()  # the same process tuning as ShopService

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, user_ids: list[UserId], ctx: bentoml.Context) -> Response:
        """Answer at once."""
        return Response(_ANSWER, media_type="application/json")


NoopService.add_asgi_middleware(FrontDoorMiddleware, from_settings=True)


@bentoml.service(name="shopflow_noop_default")
class NoopDefaultService:
    """A no-op endpoint with BentoML's default options."""

    @bentoml.api(route="/predict")
    def predict(self, user_ids: list[UserId]) -> dict:
        """Answer at once."""
        return {"model_version": "noop", "predictions": []}
