"""The cache of verified tokens saves the RS256 check on repeat requests and weakens no rule.
In-process: the verifier from server.py, called directly."""

import asyncio
import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fastmcp_auth import client, server

AUDIENCE = "http://localhost:8000/mcp"


def verifier(public_key) -> server.StrictJWTVerifier:
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    args = server.parse(["--public-url", AUDIENCE])
    return server.make_auth(args, pem).token_verifier


def token(key, **changes) -> str:
    now = int(time.time())
    claims = {"sub": "u", "iss": client.ISSUER, "aud": AUDIENCE, "exp": now + 300, "scope": "read"}
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256")


def check(v: server.StrictJWTVerifier, token: str):
    return asyncio.run(v.load_access_token(token))


def test_a_cache_hit_returns_the_same_identity(private_key):
    v = verifier(private_key.public_key())
    t = token(private_key, sub="alice", scope="read admin")
    first, again = check(v, t), check(v, t)
    assert again is first
    assert (again.subject, again.scopes) == ("alice", ["read", "admin"])


def test_a_cache_hit_skips_the_signature_check(private_key, monkeypatch):
    v = verifier(private_key.public_key())
    t = token(private_key)
    check(v, t)

    async def no_second_check(token):
        raise AssertionError("verified again")

    monkeypatch.setattr(v, "verify", no_second_check)
    assert check(v, t) is not None


def test_a_token_that_expires_after_being_cached_is_refused(private_key, monkeypatch):
    v = verifier(private_key.public_key())
    t = token(private_key, exp=int(time.time()) + 60)
    assert check(v, t) is not None
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)  # the verifiers read time.time()
    assert check(v, t) is None
    assert t not in v.verified


def test_a_tampered_variant_of_a_cached_token_is_refused(private_key):
    v = verifier(private_key.public_key())
    t = token(private_key)
    assert check(v, t) is not None
    header, payload, signature = t.split(".")
    claims = {**jwt.decode(t, options={"verify_signature": False}), "scope": "read admin"}
    admin = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert check(v, f"{header}.{admin}.{signature}") is None
    assert check(v, f"{header}.{payload}.{signature[:-8]}AAAAAAAA") is None


@pytest.mark.parametrize(
    "changes",
    [{"exp": None}, {"aud": "http://localhost:1/mcp"}, {"exp": 1}],
    ids=["no exp", "wrong audience", "expired"],
)
def test_a_refused_token_is_never_cached(private_key, changes):
    v = verifier(private_key.public_key())
    t = token(private_key, **changes)
    assert check(v, t) is None
    assert check(v, t) is None
    assert v.verified == {}


@pytest.mark.filterwarnings("ignore:.*(2048 bits|>= 2048)")  # the short key is on purpose
def test_the_cache_stays_within_its_bound_under_20000_distinct_tokens(monkeypatch):
    # A 1024-bit key signs ten times faster than the example's 2048-bit one; the cache is the same.
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    v = verifier(key.public_key())
    monkeypatch.setattr(server, "CACHE_SIZE", 1000)

    async def send_all():
        for i in range(20_000):
            assert await v.load_access_token(token(key, sub=f"user-{i}")) is not None
            assert len(v.verified) <= 1000

    asyncio.run(send_all())
    assert len(v.verified) == 1000
    assert next(reversed(v.verified.values()))[0].subject == "user-19999"  # the newest stays


def test_the_default_bound_is_the_documented_one():
    assert server.CACHE_SIZE == 10_000
    docs = (Path(server.__file__).parent / "docs" / "security.md").read_text()
    assert "| cache of verified tokens | 10,000 tokens |" in docs
