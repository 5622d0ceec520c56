"""Settings of the command line itself (`CliSettings`), read from the environment.

    CPA_SERVER_URL     a server to talk to instead of running locally (as `--server`)
    CPA_API_KEY        the key sent to that server (as `--api-key`)
    CPA_INTENTS_PATH   the intent registry `intents explain|check|eval` read (as
                       `--registry`); the same variable as `graph.config.Settings`'s

A flag wins over its variable. Read here, by `CliSettings.from_env`, apart from the graph's
`Settings`: an unrelated bad graph setting (say a misspelt LLM provider) must not stop
anyone from reaching a server or checking their rules. How variables are read:
`graph.envsettings`.
"""

from __future__ import annotations

from pydantic import Field

from graph.envsettings import EnvSettings


class CliSettings(EnvSettings):
    """Where the command line's conversations run, and which registry it reads."""

    server_url: str | None = None
    api_key: str | None = Field(None, repr=False)
    intents_path: str | None = None
