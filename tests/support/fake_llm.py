"""A scripted LLM server on loopback: answers like an OpenAI-compatible server or like Ollama.

The real client code (langchain-openai, langchain-ollama, the openai and ollama packages)
talks to it over HTTP, so a test sees exactly what our configuration makes the clients send,
and scripts what comes back: an answer, an answer cut off at the token limit, an error
status, or no answer in time.

    with FakeLLMServer() as server:          # server.url: http://127.0.0.1:P
        server.answers = [Reply(content=...)]  # consumed in order; then `default` answers
        ...
        server.requests                       # [(path, body), ...] as received

A `Reply` with no content answers a structured request with `structured` (a JSON-able
object: as a tool call when tools were sent, else as JSON text) and a plain one with `text`;
a request with `"stream": true` gets the text word by word, as Server-Sent Events.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Reply:
    """One scripted answer of the server."""

    structured: Any = None  # the object a structured request gets
    text: str = "hello from the server"  # what a plain request gets
    content: str | None = None  # raw message content, whatever the request was
    finish_reason: str = "stop"  # "length": cut off at the token limit
    status: int = 200  # an error status answers {"error": {"message": error}}
    error: str = "scripted failure"
    delay_s: float = 0.0  # wait this long before answering
    tool_call: bool = True  # answer a request with tools by calling the tool


@dataclass
class FakeLLMServer:
    """The server; a context manager that starts and stops it."""

    default: Reply = field(default_factory=Reply)
    answers: list[Reply] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeLLMServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def count(self, path_end: str = "/chat/completions") -> int:
        with self._lock:
            return sum(1 for path, _ in self.requests if path.endswith(path_end))

    def _next(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append((path, body))
            return self.answers.pop(0) if self.answers else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = server._next(self.path, body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": reply.error}})
                elif self.path.endswith("/chat/completions") and body.get("stream"):
                    self._stream(_openai_chunks(body, reply))
                elif self.path.endswith("/chat/completions"):
                    self._send(200, _openai(body, reply))
                elif self.path == "/api/chat":
                    self._send(200, _ollama(body, reply), "application/x-ndjson")
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def _send(
                self, status: int, payload: dict[str, Any], kind: str = "application/json"
            ) -> None:
                data = (json.dumps(payload) + "\n").encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def _stream(self, chunks: list[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _content(body: dict[str, Any], reply: Reply, structured: bool) -> str:
    if reply.content is not None:
        return reply.content
    return json.dumps(reply.structured) if structured else reply.text


def _openai(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if body.get("tools") and reply.tool_call and reply.content is None:
        name = body["tools"][0]["function"]["name"]
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(reply.structured)},
            }
        ]
    else:
        message["content"] = _content(body, reply, bool(body.get("response_format")))
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "m"),
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _openai_chunks(body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The answer's text a word at a time, then the finish reason (OpenAI's stream)."""
    words = _content(body, reply, False).split(" ")
    pieces = [word + (" " if n < len(words) - 1 else "") for n, word in enumerate(words)]
    common = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
    common["model"] = body.get("model", "m")
    chunks = [
        {**common, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
        for p in pieces
    ]
    last = {"index": 0, "delta": {}, "finish_reason": reply.finish_reason}
    return [*chunks, {**common, "choices": [last]}]


def _ollama(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return {
        "model": body.get("model", "m"),
        "created_at": "2026-01-01T00:00:00Z",
        "message": {
            "role": "assistant",
            "content": _content(body, reply, bool(body.get("format"))),
        },
        "done": True,
        "done_reason": reply.finish_reason,
        "total_duration": 1,
        "load_duration": 1,
        "prompt_eval_count": 1,
        "prompt_eval_duration": 1,
        "eval_count": 1,
        "eval_duration": 1,
    }
