"""The telemetry of an LLM call: the run `graph.llm.ChatModels` names `<role> model`.

Its span (a client span under its node's, with the model and the token usage), its count
per role and outcome (`ok`, `bad_output`, `error`), its duration, its tokens. The chat
model's own run inside it (metadata `cpa_role` too) only adds the usage it reports.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.exceptions import OutputParserException
from langchain_core.outputs import ChatGeneration, LLMResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from graph.llm import LLMOutputError
from graph.telemetry import metrics
from graph.telemetry.callbacks import ROLE_KEY, HandlerBase, StepRun


class LLMCallbacks(HandlerBase):
    """The LLM-call part of `TelemetryHandler`."""

    def _start_llm(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        root: UUID | None,
        metadata: Mapping[str, Any],
        name: str,
    ) -> StepRun:
        parent = self._steps.get(parent_run_id) if parent_run_id else None
        if parent is not None and parent.kind in ("llm", "llm_inner"):
            # Inside a call (the chat model under a structured-output chain, its parser).
            step = StepRun("llm_inner", root, span=parent.span, role=parent.role)
            self._add(run_id, step)
            return step
        role = str(metadata.get(ROLE_KEY))
        turn = self._turns.get(root) if root else None
        step = StepRun("llm", root, role=role, name=name)
        step.span = self._start_span(
            f"llm {role}",
            self._parent_span(parent_run_id),
            {
                "gen_ai.operation.name": "chat",
                "cpa.llm.role": role,
                "cpa.conversation_id": turn.conversation_id if turn else "",
            },
            SpanKind.CLIENT,
        )
        step.own_span = step.span is not None
        self._add(run_id, step)
        return step

    def _end_llm(self, step: StepRun, error: BaseException | None) -> None:
        if error is None:
            outcome = "ok"
        elif isinstance(error, OutputParserException | ValidationError | LLMOutputError):
            outcome = "bad_output"
        else:
            outcome = "error"
        if self.metrics_on:
            metrics.child(metrics.LLM_CALLS, step.role, outcome).inc()
            metrics.child(metrics.LLM_DURATION, step.role).observe(
                time.perf_counter() - step.started
            )
        if step.span is not None:
            step.span.set_attribute("cpa.outcome", outcome)
            if error is not None:
                step.span.record_exception(error)
                step.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            step.span.end()

    def _model_start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        metadata = metadata or {}
        if ROLE_KEY not in metadata:
            return
        step = self._start_llm(
            run_id, parent_run_id, self._root_of(parent_run_id), metadata, kwargs.get("name", "")
        )
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name")
        if model and step.span is not None:
            step.span.set_attribute("gen_ai.request.model", str(model))

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, metadata, kwargs)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        step = self._steps.pop(run_id, None)
        if step is None:
            return
        prompt, completion = _token_usage(response)
        if self.metrics_on:
            if prompt:
                metrics.child(metrics.LLM_TOKENS, step.role, "prompt").inc(prompt)
            if completion:
                metrics.child(metrics.LLM_TOKENS, step.role, "completion").inc(completion)
        if step.span is not None:
            if prompt:
                step.span.set_attribute("gen_ai.usage.input_tokens", prompt)
            if completion:
                step.span.set_attribute("gen_ai.usage.output_tokens", completion)
        if step.kind == "llm":
            self._end_llm(step, None)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        step = self._steps.pop(run_id, None)
        if step is not None and step.kind == "llm":
            self._end_llm(step, error)


def _token_usage(response: LLMResult) -> tuple[int, int]:
    """(prompt, completion) tokens, where the provider reported them."""
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                usage = getattr(generation.message, "usage_metadata", None)
                if usage:
                    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    usage = (response.llm_output or {}).get("token_usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
