"""A scripted OpenAI-shaped chat server on loopback: fixed time to first token, fixed token rate.

For benchmarks that compare agents by their shape, not by a model's wit: every agent gets
the answers it needs (a plan, the next tool calls, a final text), written by the benchmark,
and each answer costs what a real model would charge for it in time: `ttft` seconds before
the first token, then one token per `1 / rate` seconds, streamed (`"stream": true`, as
server-sent events in OpenAI's `chat.completion.chunk` shape) or not. A token is 4
characters of the answer's text (of a tool call's arguments), near what a BPE tokenizer
gives for English and JSON.

Scripts are posted by the benchmark, per model name (`POST /scripts`, `{model: [rule...]}`):
a rule is `{"when": substring or null, "rounds": [answer, ...]}`; the first rule whose
`when` occurs in the request's last user message (null: any) answers, with the answer of
the round the conversation is at (the number of assistant messages it holds; the last one
again past the end). An answer is

    {"text": "..."}                        plain text
    {"json": {...}}                        structured output: the JSON as the message's
                                           content (`response_format`), or as the forced
                                           tool call's arguments (`tool_choice`)
    {"tool_calls": [{"name", "args"}]}     tool calls, several at once (parallel)

`GET /calls` lists every call (model, arrival, first byte, end, on `time.monotonic()`,
which on Linux is the machine's clock, comparable across processes; prompt and completion
tokens); `DELETE /calls` forgets them.

    python -m benchmarks.scripted_llm --port P [--ttft 0.5] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CHARS_PER_TOKEN = 4


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def pieces(text: str) -> list[str]:
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


class ScriptedServer:
    def __init__(self, ttft: float, rate: float) -> None:
        self.ttft = ttft
        self.rate = rate
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[dict[str, Any]] = []

    # Which answer -------------------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model"))
        rules = self.scripts.get(model)
        if not rules:
            raise LookupError(f"no script for the model {model!r}")
        messages = body.get("messages") or []
        last_user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        for rule in rules:
            if rule.get("when") is None or rule["when"] in last_user:
                rounds = rule["rounds"]
                done = sum(1 for m in messages if m.get("role") == "assistant")
                return dict(rounds[min(done, len(rounds) - 1)])
        raise LookupError(f"no rule of {model!r} fits {last_user[:80]!r}")

    @staticmethod
    def shaped(answer: dict[str, Any], body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """(content, tool calls) as this request asked for them."""
        if "json" in answer:
            text = json.dumps(answer["json"], ensure_ascii=False)
            if body.get("response_format") or not body.get("tools"):
                return text, []
            choice = body.get("tool_choice")
            name = (
                choice["function"]["name"]
                if isinstance(choice, dict)
                else body["tools"][0]["function"]["name"]
            )
            return "", [{"name": name, "arguments": text}]
        if "tool_calls" in answer:
            calls = [
                {"name": c["name"], "arguments": json.dumps(c.get("args", {}))}
                for c in answer["tool_calls"]
            ]
            return "", calls
        return str(answer.get("text", "")), []

    # HTTP -----------------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        arrival = time.monotonic()
        body = await request.json()
        try:
            content, calls = self.shaped(self.answer(body), body)
        except LookupError as exc:
            return JSONResponse({"error": {"message": str(exc)}}, status_code=400)
        record: dict[str, Any] = {
            "model": body.get("model"),
            "arrival": arrival,
            "prompt_tokens": tokens(json.dumps(body.get("messages", [])))
            + tokens(json.dumps(body.get("tools", [])))
            + tokens(json.dumps(body.get("response_format", {}))),
            "completion_tokens": tokens(content) + sum(tokens(c["arguments"]) for c in calls),
        }
        self.calls.append(record)
        ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            return StreamingResponse(
                self._stream(ident, body, content, calls, record), media_type="text/event-stream"
            )
        await asyncio.sleep(self.ttft + record["completion_tokens"] / self.rate)
        record["first_byte"] = record["end"] = time.monotonic()
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [
                {"id": f"call_{n}_{ident}", "type": "function", "function": c}
                for n, c in enumerate(calls)
            ]
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": _usage(record),
            }
        )

    async def _stream(
        self,
        ident: str,
        body: dict[str, Any],
        content: str,
        calls: list[dict[str, Any]],
        record: dict[str, Any],
    ) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **more,
            }
            return f"data: {json.dumps(data)}\n\n"

        start = record["arrival"] + self.ttft
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        record["first_byte"] = time.monotonic()
        yield chunk({"role": "assistant", "content": ""})
        sent = 0

        async def paced() -> None:
            # Token n leaves at start + n / rate, whatever the time spent sending.
            nonlocal sent
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / self.rate - time.monotonic()))

        for piece in pieces(content):
            await paced()
            yield chunk({"content": piece})
        for n, call in enumerate(calls):
            head = {"index": n, "id": f"call_{n}_{ident}", "type": "function"}
            yield chunk(
                {"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]}
            )
            for piece in pieces(call["arguments"]):
                await paced()
                yield chunk({"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
        record["end"] = time.monotonic()
        yield chunk({}, "tool_calls" if calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            data: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [],
                "usage": _usage(record),
            }
            yield f"data: {json.dumps(data)}\n\n"
        yield "data: [DONE]\n\n"

    async def put_scripts(self, request: Request) -> Response:
        self.scripts.update(await request.json())
        return JSONResponse({"models": sorted(self.scripts)})

    async def list_calls(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.calls.clear()
            return JSONResponse({"calls": 0})
        return JSONResponse({"calls": self.calls})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.completions, methods=["POST"]),
                Route("/scripts", self.put_scripts, methods=["POST"]),
                Route("/calls", self.list_calls, methods=["GET", "DELETE"]),
                Route("/health", lambda _: JSONResponse({"ok": True}), methods=["GET"]),
            ]
        )


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _usage(record: dict[str, Any]) -> dict[str, int]:
    return {
        "prompt_tokens": record["prompt_tokens"],
        "completion_tokens": record["completion_tokens"],
        "total_tokens": record["prompt_tokens"] + record["completion_tokens"],
    }


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="scripted_llm", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft", type=float, default=0.5, help="seconds to the first token")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    args = parser.parse_args(argv)
    server = ScriptedServer(args.ttft, args.rate)
    uvicorn.run(server.app(), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
