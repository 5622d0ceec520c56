"""Bearer tokens from an identity provider: JWTs checked against a JWKS served by the test.

A test issuer (RSA keys made here, a JWKS served on loopback by `http.server`) signs tokens;
the server (in this process, real Valkey) takes the good ones as their claims' principal
and refuses, with 401 saying why, a token for another audience, an expired one, one from
another issuer and one signed by a key the issuer does not list. Keys rotate without a
restart: a token signed by a new key makes the JWKS fetched again.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from api.errors import ApiError
from api.principals import PERSON_SCOPES, Principal, Scope
from api.settings import ServerConfigError, ServerSettings
from api.tokens import TokenVerifier
from tests.support.server_harness import auth, request_message
from tests.test_principals import answer, post, served, waiting_propose

ISSUER = "https://idp.test"
AUDIENCE = "cpa-planner"


class Issuer:
    """An identity provider for tests: its keys, its JWKS on loopback, tokens it signs."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.listed: list[str] = []
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def new_key(self, kid: str, *, listed: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if listed:
            self.listed.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.listed:
            jwk = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    def token(self, kid: str = "k1", *, signed_by: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "anna",
            "tenant": "home",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        key = self.keys[signed_by or kid]
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    made = Issuer()
    made.new_key("k1")
    yield made
    made.close()


def settings_for(issuer: Issuer) -> ServerSettings:
    return ServerSettings(jwt_jwks=issuer.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)


async def test_tokens_from_the_test_issuer_work_and_bad_ones_are_refused(
    valkey_url: str, issuer: Issuer
) -> None:
    issuer.new_key("stranger", listed=False)
    async with served(valkey_url, settings_for(issuer)) as (_, http):
        good = issuer.token()
        propose = await waiting_propose(http, good, "user:anna")
        body = (
            await http.get(f"/v1/conversations/{propose['conversation_id']}", headers=auth(good))
        ).json()
        assert body["messages"][0]["metadata"]["principal"] == "user:anna"
        # Another person's token of the same tenant cannot answer anna's proposal.
        bob = issuer.token(sub="bob")
        assert (await post(http, bob, answer(propose, "user:bob"))).status_code == 403

        refused = {
            "aud": issuer.token(aud="someone-else"),
            "exp": issuer.token(exp=int(time.time()) - 600, iat=int(time.time()) - 900),
            "iss": issuer.token(iss="https://evil.test"),
            "unknown key": issuer.token("stranger"),
            "signature": issuer.token("k1", signed_by="stranger"),
            "no tenant": issuer.token(tenant=None),
        }
        for why, token in refused.items():
            response = await http.get("/v1/conversations", headers=auth(token))
            assert response.status_code == 401, (why, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert token not in response.text
        messages = {
            why: (await http.get("/v1/conversations", headers=auth(t))).json()["error"]["message"]
            for why, t in refused.items()
        }
        assert "expired" in messages["exp"] and "aud" in messages["aud"]
        assert "iss" in messages["iss"]


async def test_scopes_come_from_the_scope_claim(valkey_url: str, issuer: Issuer) -> None:
    async with served(valkey_url, settings_for(issuer)) as (_, http):
        reader = issuer.token(scope="read openid")
        opened = await post(http, reader, request_message("Take a note: x", sender="user:anna"))
        assert opened.status_code == 403
        assert (await http.get("/v1/conversations", headers=auth(reader))).status_code == 200


def test_keys_rotate_without_a_restart(issuer: Issuer, tmp_path: Path) -> None:
    verifier = TokenVerifier(issuer.url, issuer=ISSUER, audience=AUDIENCE, refetch_s=0)
    assert verifier.verify(issuer.token()) == Principal("home", "user:anna", PERSON_SCOPES)
    fetched = issuer.fetches
    # The provider rotates: a new key is listed, the old one dropped.
    issuer.new_key("k2")
    issuer.listed.remove("k1")
    assert verifier.verify(issuer.token("k2", scope="read")).scopes == frozenset({Scope.READ})
    assert issuer.fetches == fetched + 1
    with pytest.raises(ApiError):  # the dropped key: cached set no longer has it after refetch
        verifier.verify(issuer.token("k1"))

    # A JWKS file works the same way (an offline set-up).
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    from_file = TokenVerifier(str(jwks), issuer=ISSUER, audience=AUDIENCE)
    assert from_file.verify(issuer.token("k2")).id == "user:anna"


def test_jwt_settings_need_issuer_and_audience() -> None:
    with pytest.raises(ServerConfigError, match="CPA_JWT_ISSUER"):
        ServerSettings.from_env({"CPA_JWT_JWKS": "https://idp.test/jwks"})
    config = ServerSettings.from_env(
        {
            "CPA_JWT_JWKS": "https://idp.test/jwks",
            "CPA_JWT_ISSUER": ISSUER,
            "CPA_JWT_AUDIENCE": AUDIENCE,
        }
    )
    assert not config.open_access  # tokens only: no local mode


async def test_an_unreachable_jwks_is_401_not_a_hang(valkey_url: str) -> None:
    config = ServerSettings(
        jwt_jwks=f"http://127.0.0.1:9/{uuid.uuid4().hex}", jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    )
    maker = Issuer()
    maker.new_key("k1")
    try:
        async with served(valkey_url, config) as (_, http):
            response = await http.get("/v1/conversations", headers=auth(maker.token()))
            assert response.status_code == 401
            assert "cannot be fetched" in response.json()["error"]["message"]
            assert isinstance(response, httpx.Response)
    finally:
        maker.close()
