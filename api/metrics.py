"""`GET /metrics` (Prometheus text format) and the middleware that counts HTTP requests.

    GET /metrics   every `cpa_*` metric (`graph.telemetry.metrics`), plus
                   `cpa_conversations_active{state}` (running, waiting) read from Redis at
                   scrape time (the global index's shards, summed: the same for every
                   replica).
                   With credentials configured: for a credential with the `metrics`
                   scope (`api.principals`), or `CPA_METRICS_TOKEN`, or, without that
                   token set, a scraper on this machine (a loopback address); without
                   credentials, for this machine only, like every route. 404 with
                   `CPA_METRICS=false`. (Tenant names and counts are not for tenants.)

`HttpMetrics` is plain ASGI (no per-request task or body copy): it counts each request by
its route template (`/v1/conversations/{conversation_id}`, never the raw path; `unmatched`
where no route matched) and status, and times it until the response ended.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.archiver import backlog as archive_backlog
from api.auth import resolve, unauthorized
from api.errors import ApiError, starting
from api.local_mode import is_loopback, local_only
from api.principals import Scope as CredentialScope
from api.principals import require
from graph.telemetry import metrics

UNMATCHED = "unmatched"


class HttpMetrics:
    """ASGI middleware: `cpa_http_requests_total{route,status}` and the request duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = getattr(scope["app"].state, "telemetry", None) if "app" in scope else None
        if scope["type"] != "http" or telemetry is None or not telemetry.settings.metrics:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # Starlette's router puts the matched route into the scope.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            metrics.child(metrics.HTTP_REQUESTS, route, str(status)).inc()
            metrics.child(metrics.HTTP_DURATION, route).observe(time.perf_counter() - started)


class ActiveConversations(Collector):
    """`cpa_conversations_active{state}` with the counts read for this scrape."""

    def __init__(self, running: int, waiting: int) -> None:
        self.counts = {"running": running, "waiting": waiting}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "cpa_conversations_active",
            "Conversations running (a run queued or under way) and waiting for an answer",
            labels=["state"],
        )
        for state, count in self.counts.items():
            family.add_metric([state], count)
        yield family


async def check_token(request: Request) -> None:
    """Who may scrape (see the module docstring): 401/403 for anyone else."""
    telemetry = getattr(request.app.state, "telemetry", None)
    config = getattr(request.app.state, "server_settings", None)
    if telemetry is None or config is None:
        raise starting()
    if not telemetry.settings.metrics:
        raise ApiError(404, "metrics_off", "metrics are turned off (CPA_METRICS=false)")
    token = telemetry.settings.metrics_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    if token is not None and given and hmac.compare_digest(given, token):
        return
    if config.open_access:
        return  # this machine only (`local_only`)
    if not given:
        client = request.client.host if request.client else None
        if token is None and is_loopback(client):
            return
        raise unauthorized(
            "send Authorization: Bearer <a credential with the metrics scope"
            + (", or CPA_METRICS_TOKEN>" if token is not None else ">")
        )
    principal = await resolve(request, given)
    require(principal, CredentialScope.METRICS, "read the metrics")


router = APIRouter(dependencies=[Depends(local_only), Depends(check_token)])


@router.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def get_metrics(request: Request) -> Response:
    """The planner's metrics in Prometheus text format."""
    extra: list[Collector] = []
    replica: Any = getattr(request.app.state, "replica", None)
    if replica is not None:
        pipe = replica.redis.pipeline(transaction=False)
        for index in replica.keys.indexes():  # the global index's shards: their sum
            pipe.scard(index.running)
            pipe.zcard(index.waiting)
        counts = [int(n) for n in await pipe.execute()]
        extra.append(ActiveConversations(sum(counts[0::2]), sum(counts[1::2])))
        if getattr(request.app.state, "history", None) is not None:
            extra.append(await archive_backlog(replica.redis, replica.keys))
    body, content_type = metrics.exposition(extra)
    return Response(body, media_type=content_type)
