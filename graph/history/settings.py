"""The history's settings (`HistorySettings`), read from the environment (`graph.envsettings`).

CPA_HISTORY                  keep the history (default true); false: nothing is archived
CPA_HISTORY_URL              the database: `sqlite:///path` or `postgresql://user:pw@host/db`
                             (Supabase's connection string as it is); default the SQLite
                             file `history.db` in the data directory (CPA_DATA_DIR)
CPA_HISTORY_RETENTION_DAYS   days a conversation is kept after its last message (default
                             365; 0 keeps it for ever)
CPA_HISTORY_RETENTION        per tenant, `tenant=days,tenant=days` (overrides the above)
CPA_HISTORY_BATCH            archive stream entries one archiver stores per transaction
                             (default 200)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from graph.envsettings import ConfigError, EnvSettings

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
DEFAULT_RETENTION_DAYS = 365


class HistorySettings(EnvSettings):
    """Where the history is kept, and for how long."""

    config_error: ClassVar[type[ValueError]] = ConfigError

    history: bool = True
    history_url: str | None = Field(None, repr=False)
    history_retention_days: int = Field(DEFAULT_RETENTION_DAYS, ge=0)
    history_retention: dict[str, int] = Field(default_factory=dict)
    history_batch: int = Field(200, ge=1, le=10_000)

    @field_validator("history_retention", mode="before")
    @classmethod
    def _per_tenant(cls, value: Any) -> Any:
        """`tenant=days,...` from the environment."""
        if not isinstance(value, str):
            return value
        days: dict[str, int] = {}
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            tenant, eq, number = (s.strip() for s in entry.partition("="))
            if not eq or not _TENANT.match(tenant) or not number.isdigit():
                raise ValueError(f"{entry!r} is not tenant=days (days: a whole number, 0: keep)")
            days[tenant] = int(number)
        return days

    def url(self, data_path: Path) -> str:
        """The database URL: the setting, else the SQLite file in the data directory."""
        if self.history_url:
            return self.history_url
        return f"sqlite:///{data_path / 'history.db'}"

    def retention_of(self, tenant: str) -> int:
        """Days the tenant's conversations are kept (0: for ever)."""
        return self.history_retention.get(tenant, self.history_retention_days)
