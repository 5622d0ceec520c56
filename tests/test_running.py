"""A run that stopped after a task's writes were stored, before the next checkpoint (`api.running`).

A step's tasks store their writes as they finish; the checkpoint after the step is stored
once the step ends. A run that stops in between (Redis fails, the process dies, the lease is
lost) leaves the step's checkpoint the newest, with the finished task's writes pending.
LangGraph's latest state applies those writes and leaves the task out of `next`: a turn
stopped after `approve` took a refusal (status `done`) or after `respond` answered looks
finished, though the turn's last checkpoint was never stored. Whoever carries the run on
must carry it on all the same: else the turn never gets its answer, or the next turn's
input discards the stored writes (the answer leaves the conversation's log).

The app runs in this process on real Valkey (`tests.test_principals.served`); the saver's
checkpoint write after the named node's writes fails once, as Redis failing there does.
"""

from __future__ import annotations

from typing import Any

import pytest

from api.settings import ServerSettings
from graph.storage.errors import RedisUnavailableError
from tests.support.server_harness import auth, request_message
from tests.test_principals import ANNA, KEYS, answer, post, served, waiting_propose

REFUSED_ANSWER = "Plan not carried out: no"


def stop_after_writes_of(saver: Any, node: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the first checkpoint write after `node`'s output writes were stored fail with
    a Redis error; the list it returns gets the node's task path once that happened."""
    stopped: list[str] = []
    armed: list[str] = []
    aput, aput_writes = saver.aput, saver.aput_writes

    async def writes(config: Any, ws: Any, task_id: str, task_path: str = "") -> None:
        await aput_writes(config, ws, task_id, task_path)
        # Output, not only an interrupt: the task finished.
        finished = any(not channel.startswith("__") for channel, _ in ws)
        if not stopped and not armed and finished and task_path.endswith(f", {node}"):
            armed.append(task_path)

    async def put(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        if armed and not stopped:
            stopped.append(armed.pop())
            raise RedisUnavailableError("redis://127.0.0.1", "Connection closed by server.")
        return await aput(config, checkpoint, metadata, versions)

    monkeypatch.setattr(saver, "aput", put)
    monkeypatch.setattr(saver, "aput_writes", writes)
    return stopped


def answers_to_anna(body: dict[str, Any]) -> list[str]:
    return [
        m["content"]["text"]
        for m in body["messages"]
        if m["performative"] == "inform" and m["content"].get("topic") == "answer"
    ]


async def refuse_stopping_after(
    app: Any, http: Any, node: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Any]:
    """Anna refuses a proposed plan, and the run of her answer stops right after `node`'s
    writes were stored (before the checkpoint after them): the conversation id, the reply."""
    propose = await waiting_propose(http, ANNA, "user:anna")
    stopped = stop_after_writes_of(app.state.replica.saver, node, monkeypatch)
    refused = await post(http, ANNA, answer(propose, "user:anna", agree=False))
    assert refused.status_code == 202, refused.text
    assert stopped  # the run did stop between the node's writes and the checkpoint
    return propose["conversation_id"], refused


async def test_a_refusal_stopped_after_approve_still_gets_its_answer(
    valkey_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served(valkey_url, ServerSettings(api_keys=KEYS)) as (app, http):
        cid, _ = await refuse_stopping_after(app, http, "approve", monkeypatch)
        body = (await http.get(f"/v1/conversations/{cid}", headers=auth(ANNA))).json()
        assert body["status"] == "done" and body["result"] == {"refused": "no"}
        # The turn was carried on to `respond`: the refusal is answered, once.
        assert [m["performative"] for m in body["messages"]][-2:] == ["refuse", "inform"]
        assert answers_to_anna(body) == [REFUSED_ANSWER]


async def test_an_answer_stopped_before_its_checkpoint_stays_in_the_log_of_the_next_turn(
    valkey_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served(valkey_url, ServerSettings(api_keys=KEYS)) as (app, http):
        cid, refused = await refuse_stopping_after(app, http, "respond", monkeypatch)
        assert answers_to_anna(refused.json()["conversation"]) == [REFUSED_ANSWER]
        # The next turn of the conversation: the first turn's answer stays in its log.
        follow_up = request_message("Take a note: milk", sender="user:anna")
        follow_up["conversation_id"] = cid
        noted = await post(http, ANNA, follow_up)
        assert noted.status_code == 202, noted.text
        body = (await http.get(f"/v1/conversations/{cid}", headers=auth(ANNA))).json()
        assert body["status"] == "done"
        answers = answers_to_anna(body)
        assert answers[0] == REFUSED_ANSWER and len(answers) == 2, answers
