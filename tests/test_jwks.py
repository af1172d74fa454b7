"""Keys from a JWKS, as an identity provider publishes them: every rule holds, a new key works
as soon as it is published, and a removed key stops working, cached tokens included, as soon as
the server has fetched the JWKS again. The JWKS here is served on loopback by the test, so that
rotation takes seconds (`--jwks-refresh 1`); tests/test_authserver.py does it with a real
authorization server."""

import base64
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import ROOT, free_port, running

REFRESH = 1  # --jwks-refresh: seconds at least between fetches for an unknown kid


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_server(jwks_host, tmp_path, request):
    """server.py with --jwks-uri (and no public key at all), and a mint(kid, key, **claims);
    `--jwks-ttl` is the test's parameter, when it has one."""
    old, new = new_key(), new_key()
    jwks_host.publish(("old", old))
    port = free_port()
    url = f"http://localhost:{port}/mcp"
    args = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--jwks-uri"]
    args += [jwks_host.url, "--jwks-refresh", str(REFRESH), "--public-key", "/nonexistent"]
    args += ["--jwks-ttl", str(getattr(request, "param", 3600))]
    with running(args, tmp_path / "server.log") as srv:

        def mint(kid: str, key, typ: str = "JWT", **changes) -> str:
            now = int(time.time())
            claims = {"sub": "u", "iss": "http://localhost:8000", "aud": url, "iat": now}
            claims.update({"exp": now + 300, "scope": "read", **changes})
            claims = {name: value for name, value in claims.items() if value is not None}
            return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": typ})

        srv.keys, srv.mint, srv.jwks = {"old": old, "new": new}, mint, jwks_host
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


def test_a_new_key_is_accepted_once_the_last_fetch_is_a_refresh_interval_old(jwks_server):
    old, new = jwks_server.keys["old"], jwks_server.keys["new"]
    assert status(jwks_server, jwks_server.mint("old", old)) == 200  # the first fetch
    jwks_server.jwks.publish(("new", new), ("old", old))
    assert status(jwks_server, jwks_server.mint("new", new)) == 401  # too soon to fetch again
    assert "refresh available shortly" in jwks_server.log()
    time.sleep(REFRESH + 0.2)
    assert status(jwks_server, jwks_server.mint("new", new)) == 200  # unknown kid: one fetch


def test_a_removed_key_stops_its_cached_tokens_once_the_jwks_is_fetched_again(jwks_server):
    old, new = jwks_server.keys["old"], jwks_server.keys["new"]
    cached = jwks_server.mint("old", old)
    assert status(jwks_server, cached) == 200
    assert status(jwks_server, cached) == 200  # verified once, served from the cache
    jwks_server.jwks.publish(("new", new))  # the provider retires the old key
    assert status(jwks_server, cached) == 200  # the server's copy still holds it, until...
    time.sleep(REFRESH + 0.2)
    fetches = jwks_server.jwks.fetches
    assert status(jwks_server, jwks_server.mint("new", new)) == 200  # ...a new kid makes it fetch
    assert jwks_server.jwks.fetches == fetches + 1
    assert status(jwks_server, cached) == 401
    assert "rejected for client ?: no key of the issuer's fits it" in jwks_server.log()


@pytest.mark.parametrize("jwks_server", [2], indirect=True)  # --jwks-ttl 2
def test_a_removed_key_stops_its_cached_tokens_once_the_jwks_copy_expires(jwks_server):
    old, new = jwks_server.keys["old"], jwks_server.keys["new"]
    cached = jwks_server.mint("old", old)
    assert status(jwks_server, cached) == 200
    jwks_server.jwks.publish(("new", new))
    assert status(jwks_server, cached) == 200  # within --jwks-ttl: the server's copy holds it
    time.sleep(2.2)
    assert status(jwks_server, cached) == 401  # the copy expired, was fetched again: key gone


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
