"""The cache of verified tokens (FastMCP's TokenCache) saves the RS256 check on repeat requests
and weakens no rule. In-process: the verifier from server.py, called directly."""

import asyncio
import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fastmcp_auth import client, server

AUDIENCE = "http://localhost:8000/mcp"


def verifier(keys) -> server.StrictJWTVerifier:
    pem = (keys / "public.pem").read_text()
    return server.StrictJWTVerifier(public_key=pem, issuer=client.ISSUER, audience=AUDIENCE)


def token(key, **changes) -> str:
    now = int(time.time())
    claims = {"sub": "u", "iss": client.ISSUER, "aud": AUDIENCE, "exp": now + 300, "scope": "read"}
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256")


def check(v: server.StrictJWTVerifier, token: str):
    return asyncio.run(v.load_access_token(token))


def test_a_cache_hit_skips_the_signature_check_and_keeps_the_identity(
    keys, private_key, monkeypatch
):
    v = verifier(keys)
    t = token(private_key, sub="alice", scope="read admin")
    first = check(v, t)

    async def verified_again(self, token):
        raise AssertionError("verified again")

    monkeypatch.setattr(server.JWTVerifier, "load_access_token", verified_again)
    again = check(v, t)
    assert (
        (again.subject, again.scopes)
        == (first.subject, first.scopes)
        == ("alice", ["read", "admin"])
    )


def test_each_verifier_has_a_cache_of_its_own(keys, private_key):
    mine, other = verifier(keys), verifier(keys)
    other.audience = "http://localhost:9/mcp"  # another server in the same process
    t = token(private_key)
    assert check(mine, t) is not None
    assert check(other, t) is None


def test_a_token_that_expires_after_being_cached_is_refused(keys, private_key, monkeypatch):
    v = verifier(keys)
    t = token(private_key, exp=int(time.time()) + 30)
    assert check(v, t) is not None
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)  # TokenCache and FastMCP read time.time()
    assert check(v, t) is None


def test_a_tampered_variant_of_a_cached_token_is_refused(keys, private_key):
    v = verifier(keys)
    t = token(private_key)
    assert check(v, t) is not None
    header, payload, signature = t.split(".")
    claims = {**jwt.decode(t, options={"verify_signature": False}), "scope": "read admin"}
    admin = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert check(v, f"{header}.{admin}.{signature}") is None
    assert check(v, f"{header}.{payload}.{signature[:-8]}AAAAAAAA") is None


@pytest.mark.parametrize(
    "changes",
    [{"exp": None}, {"aud": "http://localhost:1/mcp"}, {"exp": 1}, {"sub": None}],
    ids=["no exp", "wrong audience", "expired", "no sub"],
)
def test_a_refused_token_is_never_cached(keys, private_key, changes):
    v = verifier(keys)
    t = token(private_key, **changes)
    assert check(v, t) is None
    assert v.verified.get(t) == (False, None)


@pytest.mark.filterwarnings("ignore:.*(2048 bits|>= 2048)")  # the short key is on purpose
def test_the_cache_holds_at_most_10000_tokens_the_oldest_leaving_first():
    # A 1024-bit key signs ten times faster than the example's 2048-bit one; the cache is the same.
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    v = server.StrictJWTVerifier(public_key=pem.decode(), issuer=client.ISSUER, audience=AUDIENCE)
    tokens = [token(key, sub=f"user-{i}") for i in range(10_001)]

    async def send_all():
        for t in tokens:
            assert await v.load_access_token(t) is not None

    asyncio.run(send_all())
    assert v.verified.get(tokens[0]) == (False, None)  # evicted: the 10,001st pushed it out
    assert all(v.verified.get(t)[0] for t in tokens[1:])
