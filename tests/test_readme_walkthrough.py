"""The README's "Walkthrough over HTTP", run as a reader would: its runnable blocks, verbatim.

A block is runnable when the line before its ```sh fence is `<!-- runnable -->`. They run
in order in one bash (set -eu -o pipefail), against a real `cpa-planner serve` on a free
port with real Redis and the default intent registry, once with an API key and once
without; `CPA` and `KEY` are set as the README tells the reader to set them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli_harness import clean_env
from tests.support.server_harness import ServerProcess, delete_prefix

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- runnable -->"
pytestmark = pytest.mark.slow


def runnable_blocks(markdown: str) -> list[str]:
    """The shell blocks marked runnable, in order, as written."""
    blocks = re.findall(rf"^{re.escape(MARK)}\n```sh\n(.*?)^```$", markdown, re.M | re.S)
    fences = len(re.findall(rf"^{re.escape(MARK)}\n", markdown, re.M))
    assert len(blocks) == fences, "a runnable mark not followed by a ```sh block"
    return blocks


def walkthrough() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Walkthrough over HTTP") :]
    return runnable_blocks(section[: section.index("\n## ", 3)])


def run_blocks(blocks: list[str], cpa: str, key: str, workdir: Path) -> list[str]:
    """Each block's standard output; a failing command fails the test with the transcript."""
    marker = f"@@{uuid.uuid4().hex}@@"
    script = "".join(f"echo {marker}\n{block}" for block in blocks)
    done = subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", script],
        cwd=workdir,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "CPA": cpa, "KEY": key},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.stderr == "", done.stderr
    return done.stdout.split(marker + "\n")[1:]


def events(stream: str) -> list[dict[str, object]]:
    return [json.loads(line[5:]) for line in stream.splitlines() if line.startswith("data:")]


@pytest.fixture(params=["with-key", "without-keys"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, valkey_url: str
) -> Iterator[tuple[str, str]]:
    key = "my-secret-key" if request.param == "with-key" else ""
    prefix = f"test-readme-{uuid.uuid4().hex[:10]}"
    env = clean_env(tmp_path, REDIS_URL=valkey_url, CPA_REDIS_PREFIX=prefix)
    if key:
        env["CPA_API_KEYS"] = f"me:{key}"
    process = ServerProcess(env, tmp_path / "serve.log", cli=True, inherit=False)
    process.start()
    try:
        yield process.url, key
    finally:
        process.stop()
        delete_prefix(valkey_url, prefix)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run has it)")
def test_the_walkthrough_runs_as_written(server: tuple[str, str], tmp_path: Path) -> None:
    url, key = server
    blocks = walkthrough()
    assert len(blocks) == 8
    out = run_blocks(blocks, url, key, tmp_path)
    _pick, opened, read, agreed, inbox, done, failed, replay = out

    cid = re.fullmatch(r"conversation (\S+) is waiting\n", opened)
    assert cid, opened
    conversation = json.loads(read)
    assert conversation["status"] == "waiting" and conversation["intent"] == "calendar"
    assert [m["performative"] for m in conversation["messages"]] == [
        "request",
        "inform",
        "route",
        "propose",
    ]
    assert [t["id"] for t in conversation["plan"]["todos"]] == ["t1", "t2"]
    assert agreed == "waiting\n"
    assert inbox == "Check availability in the calendar\n"
    assert done == "waiting\n"
    status, answer = failed.split("\n", 1)
    assert status == "failed"
    assert "- Check availability in the calendar: done: Anna is free tomorrow 10:00-11:00" in answer
    assert "the calendar app is not installed" in answer
    # After the last assign: its failure, then the answer; the stream has ended.
    assert [m["performative"] for m in events(replay)] == ["failure", "inform"]

    # What the server holds is what the walkthrough says.
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = httpx.get(f"{url}/v1/conversations/{cid.group(1)}", headers=headers).json()
    todos = {t["id"]: t for t in body["plan"]["todos"]}
    assert todos["t1"]["status"] == "done" and todos["t2"]["status"] == "failed"
    kinds = [m["performative"] for m in body["messages"]]
    assert kinds.count("agree") == kinds.count("done") == kinds.count("failure") == 1
    if key:  # with keys, the key is what lets the reader in
        assert httpx.get(f"{url}/v1/conversations/{cid.group(1)}").status_code == 401


def test_every_runnable_mark_in_the_readme_is_on_a_shell_block() -> None:
    readme = (ROOT / "README.md").read_text()
    assert runnable_blocks(readme) == walkthrough()  # the walkthrough's are all there are
