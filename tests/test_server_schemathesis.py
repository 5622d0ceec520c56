"""Property-based API tests: schemathesis generates requests from /openapi.json.

Bounded (a few examples per operation) so it finishes in seconds; the bar is no 5xx, and
responses that match the documented status codes, content types and schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from tests.support.server_harness import ACME_KEY, ServerProcess, auth, delete_prefix, server_env

pytestmark = pytest.mark.slow


def _old_many_api() -> None:
    """hypothesis-jsonschema 0.23.1 uses `many().more()`, which hypothesis 6.17x removed
    (now `with many(...) as e: for _ in e:`); without this, no object is ever generated.
    Adapts the old calls to the new protocol, only where the old one is missing."""
    from hypothesis.internal.conjecture import utils
    from hypothesis_jsonschema import _from_schema

    if hasattr(utils.many, "more"):
        return

    class OldMany:
        def __init__(self, data: Any, **sizes: Any) -> None:
            self.inner = utils.many(data, **sizes)
            self.inner.__enter__()
            self.elements = iter(self.inner)

        def more(self) -> bool:
            if next(self.elements, False) is None:
                return True
            self.inner.__exit__(None)
            return False

        def reject(self, why: str | None = None) -> None:
            self.inner.reject(why)

    setattr(_from_schema, "cu", SimpleNamespace(**{**vars(utils), "many": OldMany}))  # noqa: B010


_old_many_api()


@pytest.fixture(scope="module")
def api_server(
    valkey_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("schemathesis")
    env = server_env(valkey_url, directory, CPA_MAX_BODY_BYTES="16384")
    process = ServerProcess(env, directory / "server.log")
    process.start()
    yield process
    process.stop()
    delete_prefix(valkey_url, env["CPA_REDIS_PREFIX"])


@pytest.fixture(scope="module")
def api_schema(api_server: ServerProcess) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")


CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


# Driven by hand rather than with `schemathesis.pytest` (its plugin does not run on pytest 9):
# one hypothesis run per operation and generation mode, failures collected, none allowed.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_errors_and_matches_its_schema(
    api_schema: schemathesis.schemas.BaseSchema, api_server: ServerProcess, mode: GenerationMode
) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=api_server.url,
                headers={**auth(ACME_KEY), **dict(case.headers or {})},
                timeout=30,
                checks=CHECKS,
            )

        try:
            run()
        except Unsatisfiable:
            pass  # negative mode: an operation with nothing that can be made invalid
        except Exception as exc:  # hypothesis re-raises the (shrunk) failure
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures) + "\n\nserver log:\n" + api_server.log()
