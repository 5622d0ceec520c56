"""One server process's share of the work: the parts that serve one graph's conversations.

Any number of server processes (replicas) may share one Redis and key prefix: each piece of
work (a request to open, an accepted answer) is recorded in Redis with a job on a stream,
and whichever replica claims the conversation's lease runs it, one run at a time per
conversation; a replica that dies leaves its jobs and lease to time out, and another
carries the conversation on from its last checkpoint. `Replica` builds the parts on the
server's Redis and starts and stops them; the routes reach them through it (`app.state`,
`api.dependencies`):

    tenants     a tenant's conversations: threads `T/C`, ownership, the list (`api.tenants`)
    accepting   requests open conversations, answers are taken once (`api.accepting`)
    runner      this replica's consumer of the job stream (`api.runner`); it hands each
                claim to `runs`
    runs        a claimed conversation run, and where it stopped recorded (`api.running`)
    expiry      waits that last too long end as failed, `expired` (`api.expiry`)
    views       the conversation body, the inbox, where a stream starts (`api.views`)
    feeds       the SSE feeds, one subscription per process (`api.events`)
    responses   one response per message id (`api.idempotency`)
    keystore, limits
                API keys kept in Redis (`api.keystore`), tenants' caps (`api.limits`)

The parts are built one after another, each given what it uses: the runner is given
`runs.run_claim`, and nothing it is given knows the runner.
"""

from __future__ import annotations

from typing import Any

from api.accepting import Accepting
from api.events import Feeds
from api.expiry import WaitExpiry
from api.idempotency import DEFAULT_RECORD_TTL_S, ResponseRecords
from api.keystore import KeyStore
from api.limits import TenantLimits
from api.runner import Runner
from api.running import Runs
from api.settings import ServerSettings, replica_name
from api.tenants import Tenants
from api.views import Views
from graph.conversations import Conversations
from graph.services import Services
from graph.storage.event_log import EventLog
from graph.storage.leases import Leases
from graph.storage.records import ConversationRecords
from graph.storage.server_keys import RedisKeys


class Replica:
    """This process's parts for the conversations of one graph, on the server's Redis."""

    def __init__(
        self,
        conversations: Conversations,
        saver: Any,
        services: Services,
        config: ServerSettings,
        *,
        archive: bool = False,
    ) -> None:
        """`archive`: what the conversations' logs gain, and where their runs stop, is
        also handed to the history's archivers (`api.archiver`)."""
        self.conversations = conversations
        self.saver = saver
        self.redis = saver.client
        self.services = services
        self.config = config
        self.keys = RedisKeys(saver.prefix)
        ttl = services.settings.redis_ttl_s
        self.records = ConversationRecords(self.redis, self.keys, ttl, archive=archive)
        self.responses = ResponseRecords(self.redis, self.keys, ttl or DEFAULT_RECORD_TTL_S)
        self.events = EventLog(
            self.redis,
            self.keys,
            saver.call_script,
            archive=archive,
            write_wait_s=saver.write_wait_s,
        )
        self.feeds = Feeds(self.events, config.sse_refresh_s)
        self.leases = Leases(self.redis, self.keys, replica_name(), config.lease_s)
        self.keystore = KeyStore(self.redis, saver.prefix)
        self.limits = TenantLimits(
            self.redis,
            self.keys,
            rate_per_min=config.rate_limit_per_min,
            max_stored_bytes=config.max_stored_bytes_per_tenant,
            retry_after_s=config.retry_after_s,
        )
        self.tenants = Tenants(self.redis, self.keys)
        self.views = Views(
            conversations, self.redis, self.keys, self.records, self.events, self.feeds
        )
        self.accepting = Accepting(
            conversations, self.tenants, self.records, self.limits, self.redis, self.keys, config
        )
        self.runs = Runs(
            conversations,
            saver,
            self.keys,
            self.records,
            self.events,
            self.limits,
            self.views,
            ttl_s=ttl,
        )
        self.runner = Runner(
            self.redis,
            self.keys,
            self.leases,
            self.runs.run_claim,
            max_runs=config.runs_per_replica,
        )
        self.expiry = WaitExpiry(
            conversations,
            saver,
            self.keys,
            self.records,
            self.leases,
            self.runs.finish,
            wait_expiry_s=config.wait_expiry_s,
        )

    async def start(self) -> None:
        """Subscribe for the SSE feeds, take jobs (and over), start expiring waits."""
        await self.feeds.start()
        await self.runner.start()
        self.expiry.start()

    async def stop_taking_work(self) -> None:
        """This process begins to shut down: read no more jobs, so that what another
        replica hands back meanwhile goes to one that stays, and answer the requests that
        wait for a run (`?wait=`) now; runs under way go on until `close` hands them back."""
        self.feeds.end_waits()
        await self.runner.stop_reading()

    async def close(self) -> None:
        """Stop; the conversations this replica runs are handed to the others (or the next
        start)."""
        await self.expiry.close()
        await self.runner.close()
        await self.feeds.close()
