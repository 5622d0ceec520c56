"""The graph's services of the replica tests' servers (the CPA_SERVER_SERVICES hook).

The crash drill's plan (`tests.support.crash_driver.DRILL_PLAN`: seven `record` ToDos and one
desktop ToDo, d1) with a `record` executor that logs to a Redis list instead of a file, so
that several server processes, each running many conversations, write one record:

    CPA_TEST_RECORD_KEY   the list: "<conversation id> <event> <todo id> <pid>" lines,
                          events `pause`, `start`, `end`
    CPA_TEST_RECORD_URL   the Redis it is in (default: REDIS_URL)
    CPA_TEST_PAUSE        ToDo ids that stop before their start ...
    CPA_TEST_HOLD         ... or between start and end, until the key `<record>:go:<todo>`
                          exists (usually never: the test kills or stops the process there)
    CPA_TEST_DELAY_S      how long each ToDo takes (default 0.05 s): longer keeps runs under
                          way while a test does something to Redis

Each result names the process that produced it (`pid`), so a test can tell whose result
a checkpoint holds.
"""

from __future__ import annotations

import os

from graph.config import Settings
from graph.services import Services
from tests.support.crash_driver import DRILL_PLAN
from tests.support.executors import RecordingExecutor, RedisJournal
from tests.support.services import scripted_services

RECORD_KEY_ENV = "CPA_TEST_RECORD_KEY"
RECORD_URL_ENV = "CPA_TEST_RECORD_URL"
PAUSE_ENV = "CPA_TEST_PAUSE"
HOLD_ENV = "CPA_TEST_HOLD"
DELAY_ENV = "CPA_TEST_DELAY_S"
DELAY_S = 0.05


def _ids(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


def redis_record_executor(
    url: str, key: str, pause: frozenset[str], hold: frozenset[str], delay: float = DELAY_S
) -> RecordingExecutor:
    """The `record` executor, writing to the Redis list `key`."""
    return RecordingExecutor(
        name="record",
        description="records its execution in Redis (replica-test executor)",
        journal=RedisJournal(url, key),
        delay=delay,
        pause=pause,
        hold=hold,
        with_pid=True,
    )


def replica_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the replica tests' servers."""
    url = os.environ.get(RECORD_URL_ENV) or settings.redis_url or ""
    recorder = redis_record_executor(
        url,
        os.environ[RECORD_KEY_ENV],
        _ids(os.environ.get(PAUSE_ENV)),
        _ids(os.environ.get(HOLD_ENV)),
        float(os.environ.get(DELAY_ENV) or DELAY_S),
    )
    return scripted_services(settings, plan=DRILL_PLAN, executors=[recorder])
