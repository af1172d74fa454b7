"""Keys from a JWKS, as an identity provider publishes them: every rule holds, a new key works
once the server may fetch again, and a removed key stops working within a bounded time. The JWKS
is served on loopback by the test; tests/test_authserver.py does it with a real authorization
server. The timing tests wait for FastMCP's own intervals (30 s between fetches for an unknown
key id) and run with the real-component suite."""

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import JwksHost, refusal, serve

REFRESH = 30  # FastMCP's jwks_refresh_interval: seconds at least between fetches for a new kid
CACHED = 60  # seconds server.py keeps a verified token (its TokenCache ttl_seconds)


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@contextmanager
def jwks_serving(log_path) -> Iterator:
    """server.py with --jwks-uri (and no public key at all) on a JWKS that publishes "old", and
    a mint(kid, key, **claims)."""
    host, old, new = JwksHost(), new_key(), new_key()
    host.publish(("old", old))
    try:
        with serve(
            "--jwks-uri", host.url, "--public-key", "/nonexistent", log_path=log_path
        ) as srv:

            def mint(kid: str, key, typ: str = "JWT", **changes) -> str:
                now = int(time.time())
                claims = {"sub": "u", "iss": "http://localhost:8000", "aud": srv.url, "iat": now}
                claims.update({"exp": now + 300, "scope": "read", **changes})
                claims = {name: value for name, value in claims.items() if value is not None}
                return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": typ})

            srv.keys, srv.mint, srv.jwks = {"old": old, "new": new}, mint, host
            yield srv
    finally:
        host.httpd.shutdown()


@pytest.fixture(scope="module")
def jwks_server(tmp_path_factory):
    with jwks_serving(tmp_path_factory.mktemp("jwks") / "server.log") as srv:
        yield srv


def status(srv, token: str) -> int:
    response = srv.post(token)
    assert response.status_code in (200, 401, 403), response.text
    return response.status_code


@pytest.mark.parametrize("typ", ["JWT", "at+jwt"])
def test_a_token_signed_with_a_published_key_is_accepted_whatever_its_typ(jwks_server, typ):
    # RFC 9068 tokens say at+jwt, PyJWT and several identity providers write JWT: the audience,
    # not the typ, is what keeps an ID token or another service's token out.
    assert status(jwks_server, jwks_server.mint("old", jwks_server.keys["old"], typ=typ)) == 200


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"aud": "http://localhost:1/mcp"}, 401),
        ({"exp": int(time.time()) - 60}, 401),
        ({"exp": None}, 401),
        ({"sub": None}, 401),
        ({"iss": "http://evil.example"}, 401),
        ({"scope": "write"}, 403),
    ],
    ids=["wrong audience", "expired", "no exp", "no sub", "wrong issuer", "no read scope"],
)
def test_every_rule_holds_with_keys_from_a_jwks(jwks_server, changes, expected):
    token = jwks_server.mint("old", jwks_server.keys["old"], **changes)
    assert status(jwks_server, token) == expected


def test_a_token_signed_with_a_key_nobody_published_is_refused(jwks_server):
    assert status(jwks_server, jwks_server.mint("old", jwks_server.keys["new"])) == 401
    assert status(jwks_server, jwks_server.mint("other", jwks_server.keys["new"])) == 401


def test_unknown_kids_make_at_most_one_fetch_per_refresh_interval(jwks_server):
    before = jwks_server.jwks.fetches
    for i in range(20):  # bounded: an attacker's stream of made-up kids
        assert status(jwks_server, jwks_server.mint(f"made-up-{i}", jwks_server.keys["new"])) == 401
    assert jwks_server.jwks.fetches - before <= 1


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    ["[1]", '"x"', "null", '{"alg": "RS256", "kid": ["a"]}', '{"alg": "RS256", "kid": {"a": 1}}'],
)
def test_a_token_header_of_the_wrong_shape_gets_401_not_500(jwks_server, header):
    response = jwks_server.post(f"{b64(header)}.{b64('{}')}.c2lnbmF0dXJl")
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"], response.text


@pytest.mark.parametrize("jwks_uri", ["http://idp.example/jwks", "http://127.evil.example/jwks"])
def test_a_plain_http_jwks_off_loopback_is_refused_at_start(jwks_uri):
    """FastMCP would refuse every token fetched from it, saying why only at DEBUG; a name that
    starts with 127. is anyone's name, not a loopback address."""
    line = refusal("server.py", "--jwks-uri", jwks_uri)
    assert line == f"Error: jwks_uri {jwks_uri!r}: plain http only on loopback: use https", line


def test_a_jwks_off_loopback_is_fetched_only_the_bounded_way(tmp_path, mint):
    """Off loopback the server uses FastMCP's SSRF-safe fetch: https only, at most 64 KB and
    30 s, and never a private address (docs/identity-providers.md says why)."""
    refused = "Private, loopback, link-local, and reserved IPs"
    with serve("--jwks-uri", "https://10.0.0.7/jwks", log_path=tmp_path / "log") as srv:
        token = jwt.encode({"sub": "u"}, new_key(), algorithm="RS256", headers={"kid": "k"})
        response = srv.post(token)
        assert response.status_code == 401, response.text
        assert "JWKS fetch blocked by SSRF protection" in srv.log_once_it_says(refused), srv.log()
        assert refused in srv.log()


@pytest.mark.real
def test_a_rotated_key_is_used_and_a_removed_one_stops_within_the_bound(tmp_path):
    with jwks_serving(tmp_path / "server.log") as jwks_server:
        rotate_then_remove(jwks_server)


def rotate_then_remove(jwks_server) -> None:
    old, new = jwks_server.keys["old"], jwks_server.keys["new"]
    cached = jwks_server.mint("old", old)
    assert status(jwks_server, cached) == 200  # the first fetch; the token is now cached
    first_fetch = time.monotonic()
    jwks_server.jwks.publish(("new", new), ("old", old))  # rotation: a new key signs
    assert status(jwks_server, jwks_server.mint("new", new)) == 401  # too soon to fetch again
    assert "refresh available shortly" in jwks_server.log()
    time.sleep(max(0, first_fetch + REFRESH + 0.5 - time.monotonic()))
    assert status(jwks_server, jwks_server.mint("new", new)) == 200  # unknown kid: one fetch
    second_fetch = time.monotonic()
    assert status(jwks_server, cached) == 200  # the old key is still published
    jwks_server.jwks.publish(("new", new))  # the provider retires the old key
    assert status(jwks_server, cached) == 200  # the server's copy and cache still hold it...
    time.sleep(max(0, second_fetch + REFRESH + 0.5 - time.monotonic()))
    assert first_fetch + CACHED < time.monotonic()  # ...the cache entry has expired by now
    assert status(jwks_server, jwks_server.mint("newer", new)) == 401  # an unknown kid: a fetch
    assert status(jwks_server, cached) == 401  # the old key is gone from the server's copy
    assert status(jwks_server, jwks_server.mint("new", new)) == 200
