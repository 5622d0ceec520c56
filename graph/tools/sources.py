"""Where a tenant's catalogue comes from, merged for each planning call (docs/tools.md).

In this order (a later tool whose name is taken is qualified by its source):

1. the executors, as free-form steps (`graph.tools.executors`);
2. the tools of the catalogue files (`CPA_TOOLS_FILES`, `graph.tools.files`);
3. the tools of the MCP servers (`CPA_MCP_SERVERS` and the files' `mcp_servers`), listed
   when first needed and again after `mcp_list_ttl_s`; a server that cannot be listed
   adds nothing (logged), and is tried again after a short while;
4. the skills on the cards of the A2A agents (`CPA_A2A_AGENTS`), listed the same way;
5. the tenant's agents' offers (`graph.tools.offers`), read from Redis on every call, so an
   offer counts from the next planning call on.

A tool must name an executor that runs tools (`runs_tools`): one that does not is left out
with a warning, as it could never run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.config import Settings
from graph.executor_registry import ExecutorRegistry
from graph.tools.catalogue import Catalogue, Entry, SourceUnavailableError, tool_entries
from graph.tools.executors import executor_entries, runs_tools
from graph.tools.files import ToolFile
from graph.tools.mcp import McpServer, list_tools
from graph.tools.offers import OfferStore
from lam import Tool

logger = logging.getLogger(__name__)

#: The tenant of a conversation without an owner (the command line's, Studio's): the same
#: one the server gives every caller when no API key is configured.
DEFAULT_TENANT = "local"
TENANT_KEY = "tenant"
#: After a failed listing, how long a server is left alone before it is tried again.
RETRY_AFTER_FAILURE_S = 30.0

SkillLister = Callable[[], Coroutine[Any, Any, list[Tool]]]


def tenant_of(config: RunnableConfig) -> str:
    """The tenant a run plans for (`configurable["tenant"]`, set by `graph.conversations`)."""
    tenant = (config.get("configurable") or {}).get(TENANT_KEY)
    return str(tenant) if tenant else DEFAULT_TENANT


@dataclass
class _Listing:
    """One remote source's tools as last listed."""

    tools: list[Tool] = field(default_factory=list)
    expires: float = 0.0


@dataclass
class ToolSources:
    """Builds the catalogue of a tenant (see the module docstring)."""

    settings: Settings
    executors: ExecutorRegistry
    files: Sequence[ToolFile] = ()
    mcp_servers: Sequence[McpServer] = ()
    offers: OfferStore | None = None
    # name -> a coroutine listing that A2A agent's skills as tools (`nodes.executors.a2a`)
    a2a_skills: Mapping[str, SkillLister] = field(default_factory=dict)
    _listings: dict[str, _Listing] = field(default_factory=dict, repr=False)

    def with_offers(self, offers: OfferStore | None) -> ToolSources:
        """The same sources (and listings), with the agents' offers read from `offers`."""
        return replace(self, offers=offers, _listings=self._listings)

    # --- the static part -------------------------------------------------------------------

    def _runnable(self, entries: list[Entry]) -> list[Entry]:
        kept = []
        for entry in entries:
            executor = entry.executor
            if executor in self.executors and runs_tools(self.executors.get(executor)):
                kept.append(entry)
            else:
                logger.warning(
                    "tool %s (%s) left out: its executor %r %s",
                    entry.name,
                    entry.source,
                    executor,
                    "runs no tools" if executor in self.executors else "does not exist",
                )
        return kept

    def file_entries(self) -> list[Entry]:
        entries: list[Entry] = []
        for tool_file in self.files:
            entries += tool_entries(tool_file.tools, tool_file.source, tool_file.executor)
        return self._runnable(entries)

    # --- listed sources (MCP servers, A2A agents) -------------------------------------------

    async def _listed(self, key: str, lister: SkillLister) -> list[Tool]:
        now = time.monotonic()
        listing = self._listings.get(key)
        if listing is not None and listing.expires > now:
            return listing.tools
        try:
            tools = await lister()
        except (SourceUnavailableError, OSError, TimeoutError) as exc:
            logger.warning("%s: no tools listed: %s", key, getattr(exc, "message", exc))
            kept = listing.tools if listing is not None else []
            self._listings[key] = _Listing(kept, now + RETRY_AFTER_FAILURE_S)
            return kept
        self._listings[key] = _Listing(tools, now + self.settings.mcp_list_ttl_s)
        return tools

    async def remote_entries(self) -> list[Entry]:
        settings = self.settings

        def mcp_lister(server: McpServer) -> SkillLister:
            return lambda: list_tools(server, settings.mcp_allowlist, settings.mcp_timeout_s)

        jobs: list[tuple[str, str, SkillLister]] = [
            (f"mcp:{s.name}", s.executor, mcp_lister(s)) for s in self.mcp_servers
        ]
        jobs += [(f"a2a:{name}", f"a2a:{name}", lister) for name, lister in self.a2a_skills.items()]
        listed = await asyncio.gather(*(self._listed(key, lister) for key, _, lister in jobs))
        entries: list[Entry] = []
        for (key, executor, _), tools in zip(jobs, listed, strict=True):
            # MCP tools are listed as `<server>.<tool>`; the server knows them by `<tool>`.
            for entry in tool_entries(tools, key, executor):
                own = entry.name.removeprefix(f"{key.partition(':')[2]}.")
                entries.append(Entry(entry.tool, entry.kind, entry.source, own))
        return self._runnable(entries)

    async def offer_entries(self, tenant: str) -> list[Entry]:
        if self.offers is None:
            return []
        entries: list[Entry] = []
        for offer in await self.offers.get(tenant):
            entries += tool_entries(offer.actions, f"offer:{offer.agent}", offer.executor)
        return self._runnable(entries)

    # --- the catalogue ------------------------------------------------------------------------

    async def catalogue(self, tenant: str | None = None) -> Catalogue:
        """The catalogue a planning call of `tenant` sees."""
        remote = await self.remote_entries()
        offered = await self.offer_entries(tenant or DEFAULT_TENANT)
        merged = Catalogue.merge(
            executor_entries(self.executors), [*self.file_entries(), *remote, *offered]
        )
        if merged.dropped:
            logger.warning("tools left out, their names taken twice: %s", ", ".join(merged.dropped))
        return merged
