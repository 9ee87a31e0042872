"""The Shopflow view as a FastAPI app, mounted in the Airflow api-server by the plugin.

Every route depends on Airflow's own security dependencies: reading needs the right to
read ``shopflow_training``'s runs, rolling back the right to trigger ``shopflow_rollback``,
checked by whichever auth manager the api-server runs (the JWT comes as the UI's ``_token``
cookie or an ``Authorization: Bearer`` header). The rollback is triggered through
Airflow's REST API with the caller's own token, so Airflow validates the form (the DAG's
``Param`` schema), records the logged-in user as the run's triggering user, and the
rollback stage writes that user into the ledger as the actor.

Airflow is imported only in :func:`create_app`, which only the api-server calls.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)

from shopflow.ui import data, plots

if TYPE_CHECKING:
    import jinja2

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

URL_PREFIX = "/shopflow"
READ_DAG = "shopflow_training"
ROLLBACK_DAG = "shopflow_rollback"
TEMPLATES = Path(__file__).with_name("templates")
SVG = "image/svg+xml"


@cache
def _templates() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["num"] = number
    return env


def number(value: Any) -> str:
    """A metric as the pages show it: floats to 4 decimals (a count stored as a float, such
    as ``rows``, as an integer), a missing one as a dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) >= 2 else f"{value:.4f}"
    return str(value)


def _settings(app: FastAPI) -> Settings:
    """The run settings of this api-server (``SHOPFLOW_*`` and ``SHOPFLOW_CONFIG``), read once."""
    if getattr(app.state, "settings", None) is None:
        from shopflow.settings import load_settings

        app.state.settings = load_settings()
    settings: Settings = app.state.settings
    return settings


def _token(request: Request) -> str | None:
    """The caller's JWT: the bearer header wins over the UI's cookie (as Airflow decides)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get("_token")


def _airflow_root(request: Request) -> str:
    """The api-server's own address as this request reached it (for its REST API)."""
    host, port = request.scope.get("server") or (request.url.hostname, request.url.port)
    host = f"[{host}]" if ":" in str(host) else host  # an IPv6 address
    root = str(request.scope.get("root_path", "")).removesuffix(URL_PREFIX).rstrip("/")
    return f"{request.url.scheme}://{host}:{port}{root}"


async def current_user(request: Request) -> Any:
    """The logged-in Airflow user, from the same token Airflow's own checks just accepted."""
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    return await resolve_user_from_token(_token(request))


CurrentUser = Annotated[Any, Depends(current_user)]


def create_app() -> FastAPI:
    """The FastAPI app the plugin mounts at :data:`URL_PREFIX`."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    read = [Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=READ_DAG))]
    trigger = [Depends(requires_access_dag("POST", DagAccessEntity.RUN,
                                           param_dag_id=ROLLBACK_DAG))]
    app = FastAPI(title="Shopflow", docs_url=None, redoc_url=None, openapi_url=None)

    def page(request: Request, template: str, status_code: int = 200,
             **context: Any) -> HTMLResponse:
        prefix = str(request.scope.get("root_path", URL_PREFIX)).rstrip("/")
        name = template.removesuffix(".html")
        section = {"run": "runs"}.get(name, name)
        text = _templates().get_template(template).render(
            prefix=prefix, airflow=prefix.removesuffix(URL_PREFIX), section=section, **context)
        return HTMLResponse(text, status_code=status_code)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Errors as a page a person can act on (log in again; the JSON stays for clients)."""
        if "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return page(request, "message.html", status_code=exc.status_code,
                    title=f"{exc.status_code}", message=str(exc.detail),
                    login=exc.status_code in (401, 403))

    def not_found(exc: data.NotFound) -> HTTPException:
        return HTTPException(status_code=404, detail=str(exc))

    @app.get("/", dependencies=read)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/models", status_code=307)

    @app.get("/models", dependencies=read, response_class=HTMLResponse)
    def models(request: Request, user: CurrentUser, model: str = "propensity",
               at: str | None = None) -> HTMLResponse:
        try:
            when = data.parse_when(at)
            content = data.model_page(_settings(request.app), model, when=when)
        except data.NotFound as exc:
            raise not_found(exc) from exc
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return page(request, "models.html", user=user.get_name(), at=at or "",
                    rollback_dag=ROLLBACK_DAG, **content)

    @app.get("/models/{model}/history.svg", dependencies=read)
    def history_plot(request: Request, model: str) -> Response:
        try:
            content = data.model_page(_settings(request.app), model)
        except data.NotFound as exc:
            raise not_found(exc) from exc
        return Response(plots.metric_over_time(content["history"], model=model), media_type=SVG)

    @app.get("/runs", dependencies=read, response_class=HTMLResponse)
    def runs(request: Request, kind: str | None = None) -> HTMLResponse:
        return page(request, "runs.html", kind=kind or "",
                    runs=data.list_runs(_settings(request.app), kind=kind or None))

    @app.get("/runs/{run_id}", dependencies=read, response_class=HTMLResponse)
    def run(request: Request, run_id: str, task: str | None = None) -> HTMLResponse:
        try:
            content = data.run_page(_settings(request.app), run_id, task=task or None)
        except data.NotFound as exc:
            raise not_found(exc) from exc
        return page(request, "run.html", **content)

    @app.get("/runs/{run_id}/curves.svg", dependencies=read)
    def curves_plot(request: Request, run_id: str) -> Response:
        curves = data.evaluation_curves(_settings(request.app), run_id)
        if not curves:
            raise HTTPException(status_code=404, detail=f"run {run_id!r} has no evaluation")
        return Response(plots.roc_and_calibration(curves), media_type=SVG)

    @app.get("/monitoring", dependencies=read, response_class=HTMLResponse)
    def monitoring(request: Request) -> HTMLResponse:
        return page(request, "monitoring.html", **data.monitoring_page(_settings(request.app)))

    @app.get("/monitoring/{run}/psi.svg", dependencies=read)
    def psi_plot(request: Request, run: str) -> Response:
        return Response(plots.psi_bars(data.feature_psi(_settings(request.app), run)),
                        media_type=SVG)

    @app.get("/files/{path:path}", dependencies=read)
    def report(request: Request, path: str) -> FileResponse:
        """A report under ``SHOPFLOW_HOME/reports`` (training report, gate pages, Data Docs)."""
        try:
            return FileResponse(data.served_file(_settings(request.app).reports_dir, path))
        except data.NotFound as exc:
            raise not_found(exc) from exc

    @app.get("/dbt-docs/{path:path}", dependencies=read)
    def dbt_docs(request: Request, path: str = "") -> Response:
        """dbt's documentation site, as the transform stage generated it (one static page)."""
        from shopflow.transform.docs import DOCS_PAGE

        try:
            return FileResponse(data.served_file(data.dbt_docs_dir(_settings(request.app)),
                                                 path or DOCS_PAGE))
        except data.NotFound as exc:
            return page(request, "message.html", status_code=404, title="dbt docs",
                        message=f"{exc}: the marts stage of the next training run writes it.",
                        login=False)

    @app.post("/rollback", dependencies=trigger, response_class=HTMLResponse)
    async def rollback(request: Request, user: CurrentUser,
                       reason: Annotated[str, Form()] = "",
                       version: Annotated[str, Form()] = "",
                       from_version: Annotated[str, Form()] = "") -> HTMLResponse:
        """Trigger ``shopflow_rollback`` as the logged-in user, with a required reason.

        A browser's form from another origin is refused (the UI cookie is SameSite=Lax,
        which still travels between ports of one host).
        """
        import httpx

        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(status_code=403, detail=(
                f"rollback: a form from another origin ({origin}) is refused; use the Models "
                "page of the Shopflow menu"))
        if len(reason.strip()) < 3:
            raise HTTPException(status_code=422,
                                detail="reason: required (at least 3 characters): why roll back")
        conf = {"reason": reason.strip(), "version": version.strip() or None,
                "from_version": from_version.strip() or None}
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"{_airflow_root(request)}/api/v2/dags/{ROLLBACK_DAG}/dagRuns",
                headers={"Authorization": f"Bearer {_token(request)}"},
                json={"logical_date": None, "conf": conf,
                      "note": f"rollback from the Shopflow view by {user.get_name()}"})
        if answer.status_code != 200:
            raise HTTPException(status_code=answer.status_code,
                                detail=f"Airflow refused the rollback run: {answer.text[:500]}")
        run_id = answer.json()["dag_run_id"]
        logger.info("rollback run %s triggered by %s: %s", run_id, user.get_name(), reason)
        return page(request, "message.html", title="Rollback triggered", login=False,
                    message=f"{ROLLBACK_DAG} run {run_id} triggered by {user.get_name()} "
                            f"(reason: {conf['reason']}); the ledger records the move when it "
                            "runs.",
                    link=f"dags/{ROLLBACK_DAG}/runs/{quote(run_id, safe='')}")

    return app
