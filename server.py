"""The HTTP API for the CPA Desktop AI (docs/http.md): FastAPI over `graph.conversations`.

This module builds the app and runs it; the parts are in the `api` package (see its
docstring): settings, errors, models, auth, this process's replica (accepting messages,
running conversations in the background, expiring waits, views), idempotency, the SSE event
log, the OpenAPI document, the routes and the metrics (`GET /metrics`, the HTTP
middleware). Runs report to `graph.telemetry`. Beside the LAM API, A2A over the same
conversations (`api.a2a`: the agent card, JSON-RPC at `/a2a`, and the watcher that notices
A2A agents' tasks ending).

    app               the app, configured from the environment at start-up (langgraph.json,
                      `uvicorn server:app`)
    create_app(...)   an app with given settings and services
    serve(host, port) run it with uvicorn (`cpa-planner serve [--workers N]`)

Any number of server processes may share one Redis and key prefix (replicas): on one
machine `serve --workers N`, on several one `serve` each; a conversation runs on one of
them at a time, and a replica that dies is taken over by the others (`api.runner`,
docs/replicas.md). Configuration: `api.settings`. Without API keys
the server refuses to listen beyond loopback however it is started, and serves local
programs only (`api.local_mode`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from types import FrameType
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import http_timeouts as header_deadline
from api.a2a import A2AServer
from api.a2a import router as a2a_router
from api.a2a.card import agent_card
from api.a2a.remote_tasks import RemoteTaskWatcher
from api.auth import LOCAL_TENANT
from api.console import router as console_router
from api.errors import ApiError, install_error_handlers
from api.history import open_history
from api.history import router as history_router
from api.local_mode import check_bind, served_hosts
from api.metrics import HttpMetrics
from api.metrics import router as metrics_router
from api.openapi import openapi_document
from api.replica import Replica
from api.routes import router
from api.settings import ServerConfigError, ServerSettings, load_services
from api.tools import router as tools_router
from graph.config import ConfigError, Settings
from graph.conversations import Conversations
from graph.history.settings import HistorySettings
from graph.services import Services
from graph.telemetry import Telemetry, TelemetrySettings
from graph.telemetry.logs import configure_logging, logging_config
from graph.tools.offers import OfferStore

__all__ = [
    "ApiError",
    "ServerConfigError",
    "ServerSettings",
    "app",
    "create_app",
    "serve",
]

logger = logging.getLogger("cpa_planner.server")


def settle_heap() -> None:
    """After start-up: what the server keeps for its life (modules, the graph, the intent
    classifier) leaves the cyclic collector's view, and the collector runs less often.

    A run allocates many short-lived containers, and reference counting frees nearly all of
    them; with CPython's default threshold (700) the collector still ran about once a run,
    its full passes walking everything the server holds: 2.3 ms, about 6 % of a run's CPU
    (`benchmarks.replicas`, one replica, 16 clients), more with more runs in flight. After
    this: 0.01 ms. Cycles are still found, a little later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


# How long uvicorn's supervisor waits for a worker to answer its ping (`--workers N`) before
# it kills the worker as hung and starts another. Its default, 5 s, is less than a worker
# takes to import the app on a busy 2-core machine: the supervisor then killed every worker
# before it was up, and started new ones, for minutes.
WORKER_HEALTHCHECK_S = 60


def on_stop_signal(stop: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run `stop()` in this event loop as soon as SIGTERM or SIGINT arrives; returns what
    puts the previous handlers back.

    uvicorn's handler (chained, not replaced) starts its graceful shutdown, which waits for
    the open requests (up to 5 s) before the app's lifespan ends; meanwhile the replica
    would go on taking jobs, among them those its sibling workers or other stopping
    replicas hand back. Main thread only (signals are delivered there), else nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    tasks: set[asyncio.Future[None]] = set()

    def start_stopping() -> None:
        task = asyncio.ensure_future(stop())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(start_stopping)
        prior = previous[sig]
        if callable(prior):
            prior(sig, frame)
        else:  # SIG_DFL (no uvicorn): what it would have done
            signal.signal(sig, prior)
            signal.raise_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, prior in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, prior)

    return restore


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    server_settings: ServerSettings | None = None,
    history_settings: HistorySettings | None = None,
) -> FastAPI:
    """The API app. Nothing here touches Redis: the lifespan opens the checkpointer.

    `settings`/`server_settings`/`history_settings` default to the environment (read at
    start-up), `services` to `make_services(settings)` (or the CPA_SERVER_SERVICES hook).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from graph.builder import build_graph
        from graph.storage.connect import open_checkpointer

        config = server_settings or ServerSettings.from_env()
        try:
            check_bind(config, served_hosts())
        except ServerConfigError as exc:
            logger.error("%s", exc)  # uvicorn then stops: "Application startup failed"
            raise
        svc = services or load_services(settings or Settings.from_env(), config.services_factory)
        # Metric labels for configured tenants only (bounded); `local` without keys.
        tenants = config.configured_tenants or {LOCAL_TENANT}
        telemetry = Telemetry(TelemetrySettings.from_env(), tenants=tenants)
        # Mounted into `langgraph dev` (http.app), our routes are served by its app and
        # `request.app` is that one: keep the state on both.
        apps = [app] if app is api_app else [app, api_app]
        tokens = None  # bearer JWTs of an identity provider, if configured (PyJWT: on demand)
        if config.jwt_jwks:
            from api.tokens import TokenVerifier

            tokens = TokenVerifier.from_settings(config)
        for target in apps:
            target.state.server_settings = config
            target.state.telemetry = telemetry
            target.state.tokens = tokens
        if config.open_access:
            logger.warning(
                "no API keys configured (CPA_API_KEYS / CPA_API_KEYS_FILE): every caller is "
                "tenant %r, and only this machine's programs are served",
                LOCAL_TENANT,
            )
        # The first request the rules leave to the classifier should not wait for its training.
        await asyncio.to_thread(svc.intents.warm)
        async with (
            open_checkpointer(svc.settings) as saver,
            # The history (`api.history`): its schema checked, this replica's archiver.
            open_history(svc.settings, saver, history_settings) as history,
        ):
            # Agents' offers are kept in the conversations' Redis (`graph.tools.offers`).
            offers = OfferStore(saver.client, svc.settings.redis_prefix)
            svc = replace(svc, tools=svc.tools.with_offers(offers))
            graph = build_graph(svc, checkpointer=saver)
            replica = Replica(
                Conversations(graph, saver, telemetry), saver, svc, config, archive=bool(history)
            )
            await replica.start()
            # The handler's card says what it supports; the served card is built per request.
            card = agent_card(svc, config.public_url or "", keys=not config.open_access)
            a2a = A2AServer(replica, card)
            watcher = RemoteTaskWatcher(replica)  # notices A2A agents' tasks ending
            await watcher.start()
            for target in apps:
                target.state.replica = replica
                target.state.a2a = a2a
                target.state.history = history
            restore_signals: Callable[[], None] = lambda: None  # noqa: E731
            if app is api_app:  # our own process (not mounted into `langgraph dev`'s)
                settle_heap()
                restore_signals = on_stop_signal(replica.stop_taking_work)
            try:
                yield
            finally:
                restore_signals()
                for target in apps:
                    target.state.replica = None
                    target.state.a2a = None
                    target.state.history = None
                await watcher.close()
                await a2a.close()
                await replica.close()
                telemetry.shutdown()

    # FastAPI's own /docs loads Swagger UI from a CDN; this one serves the package's copy.
    # No /redoc: ReDoc still fetches its logo from its vendor's site.
    api_app = FastAPIOffline(
        redoc_url=None,
        title="cpa-planner",
        version="0.1.0",
        summary="Planning service for the CPA Desktop AI: LAM messages in, plans and results out.",
        lifespan=lifespan,
    )
    # Set by the lifespan (requests before it get 503).
    api_app.state.server_settings = server_settings
    api_app.state.replica = None
    api_app.state.telemetry = None
    api_app.state.a2a = None
    api_app.state.history = None
    api_app.state.tokens = None
    install_error_handlers(api_app)
    api_app.add_middleware(HttpMetrics)
    api_app.include_router(router)
    api_app.include_router(metrics_router)
    api_app.include_router(console_router)
    api_app.include_router(tools_router)
    api_app.include_router(history_router)
    api_app.include_router(a2a_router)
    api_app.openapi = lambda: openapi_document(api_app)  # type: ignore[method-assign]
    return api_app


# Running it -----------------------------------------------------------------------------


def serve(
    host: str | None = None,
    port: int | None = None,
    *,
    workers: int | None = None,
    log_level: str | None = None,
) -> None:
    """Run the API with uvicorn (for `cpa-planner serve`). Blocks until stopped.

    Host, port and workers default to CPA_HOST, CPA_PORT and CPA_WORKERS (a container's
    command gets them from its environment). With `workers` > 1, uvicorn starts that many
    worker processes on the one port (fresh interpreters, not forks: each imports
    `server:app`, reads the environment and opens its own Redis connections in its
    lifespan), each a replica (`api.runner`).

    Raises ServerConfigError / ConfigError for unusable settings, among them a host other
    machines can reach while no API key is configured. Logs go to stderr as text or JSON
    (`CPA_LOG_FORMAT`), uvicorn's own lines too.
    """
    import uvicorn

    config = ServerSettings.from_env()
    settings = Settings.from_env()
    telemetry_settings = TelemetrySettings.from_env()
    host = host or config.host
    port = port or config.port
    workers = config.workers if workers is None else workers
    check_bind(config, [host])  # the lifespan says once that no keys are configured
    header_deadline.HeaderDeadline.seconds = config.header_timeout_s
    if workers < 1:
        raise ServerConfigError(f"--workers must be at least 1, not {workers}")
    level = log_level or telemetry_settings.log_level
    configure_logging(telemetry_settings, level=level)
    # uvicorn takes an import string, not an app, for several workers: each builds its own.
    target = create_app(settings, server_settings=config) if workers == 1 else "server:app"
    uvicorn.run(
        target,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        log_level=level,
        # uvicorn's loggers go through ours (text or JSON), in each worker process too.
        log_config=logging_config(telemetry_settings, level=level),
        timeout_graceful_shutdown=5,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        # A request's headers must arrive in time (slow clients hold no socket for ever).
        http=header_deadline.protocol_class,
        timeout_keep_alive=5,
    )


def main(argv: list[str] | None = None) -> int:
    """`python server.py [--host H] [--port P] [--workers N]`: as `cpa-planner serve`."""
    import argparse

    parser = argparse.ArgumentParser(prog="server.py", description="the cpa-planner HTTP API")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, workers=args.workers)
    except (ServerConfigError, ConfigError) as exc:
        print(f"cpa-planner: {exc}", file=sys.stderr)
        return 2
    return 0


app = create_app()

if __name__ == "__main__":
    raise SystemExit(main())
