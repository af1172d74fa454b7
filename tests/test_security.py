"""Safe by default: the RFC 8725 checklist and the MCP authorization rules, against the real
server over HTTP. Each refusal asserts the exact status and the WWW-Authenticate challenge."""

import asyncio
import base64
import hashlib
import hmac
import json
import random
import re
import socket
import time
from dataclasses import dataclass

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from conftest import INITIALIZE, MCP_HEADERS, ROOT, JwksHost, call
from fastmcp_auth import client, server
from fastmcp_auth.__main__ import write_keys

HOUR = 3600


def challenge(response: httpx.Response) -> dict[str, str]:
    """WWW-Authenticate as {"scheme": ..., param: value}, without error_description (FastMCP's
    generic prose): the scheme, error, scope and resource_metadata are what a client acts on."""
    header = response.headers.get("www-authenticate")
    if header is None:
        return {}
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    params.pop("error_description", None)
    return {"scheme": header.split(" ", 1)[0], **params}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Forge:
    """What an attacker (and a careless issuer) can make tokens with."""

    mint: object
    claims: object
    public_pem: bytes  # the server's public key: public, so the attacker has it too
    attacker_key: object
    attacker_jwk: dict
    private_key: object  # the real signing key: what a buggy issuer signs with
    jwks: JwksHost  # the attacker's key, served on loopback: fetched, it would count

    @property
    def jwks_url(self) -> str:
        return self.jwks.url

    def hs256_with_public_key(self) -> str:
        """RS→HS key confusion: HMAC-signed with the server's public PEM as the secret (PyJWT
        refuses to make this token, so it is assembled by hand)."""
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        signing_input = f"{header}.{b64(json.dumps(self.claims()).encode())}"
        signature = hmac.new(self.public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(signature)}"

    def with_payload(self, **changes) -> str:
        """A valid token whose payload is swapped for another, the signature kept."""
        header, _, signature = self.mint().split(".")
        return f"{header}.{b64(json.dumps(self.claims(**changes)).encode())}.{signature}"

    def signed_json(self, **raw: str) -> str:
        """A token signed with the real key whose claims are valid but for `raw`: claim values
        written as JSON text (`1e400`, `NaN`), which PyJWT's json.dumps cannot produce."""
        claims = {name: value for name, value in self.claims().items() if name not in raw}
        text = json.dumps(claims)[:-1] + "".join(f', "{k}": {v}' for k, v in raw.items()) + "}"
        return jwt.api_jws.encode(text.encode(), self.private_key, algorithm="RS256")

    def nested(self, part: str) -> str:
        """An unsigned token whose header or payload is JSON nested 3,000 deep: FastMCP alone
        answers it with HTTP 500 (a RecursionError it lets through)."""
        deep = b64(b"[" * 3000 + b"]" * 3000)
        header = deep if part == "header" else b64(b'{"alg": "RS256", "typ": "JWT"}')
        return f"{header}.{deep if part == 'payload' else b64(b'{}')}.c2lnbmF0dXJl"

    def with_flipped_signature(self) -> str:
        token = self.mint()
        i = len(token) - 40  # inside the signature, away from its last (partly padding) char
        return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


@pytest.fixture(scope="module")
def forge(mint, claims, keys, private_key, tmp_path_factory) -> Forge:
    folder = tmp_path_factory.mktemp("attacker")
    write_keys(folder / "private.pem", folder / "public.pem")
    attacker_key = (folder / "private.pem").read_bytes()
    jwks = JwksHost()
    jwks.publish(("x", load_pem_private_key(attacker_key, password=None)))
    jwk = json.loads(jwks.body)["keys"][0]
    public_pem = (keys / "public.pem").read_bytes()
    yield Forge(mint, claims, public_pem, attacker_key, jwk, private_key, jwks)
    jwks.httpd.shutdown()


def bearer(make_token):
    return lambda f: {"token": make_token(f)}


MISSING, INVALID, SCOPE = "no credentials", "invalid_token", "insufficient_scope"
NOW = int(time.time())
CASES = {
    # How the token travels (RFC 6750 §2.1; MCP: only in the Authorization header)
    "no Authorization header": (lambda f: {}, 401, MISSING),
    "another scheme (Basic)": (
        lambda f: {"headers": {"Authorization": "Basic dTpw"}},
        401,
        MISSING,
    ),
    "token in the query string": (lambda f: {"params": {"access_token": f.mint()}}, 401, MISSING),
    # Not a JWT at all
    "garbage": (bearer(lambda f: "not-a-jwt"), 401, INVALID),
    "two segments": (bearer(lambda f: f.mint().rsplit(".", 1)[0]), 401, INVALID),
    "truncated": (bearer(lambda f: f.mint()[:-30]), 401, INVALID),
    "8 KB of noise": (bearer(lambda f: "eyJ" + "A" * 8192), 401, INVALID),
    "header JSON nested 3,000 deep": (bearer(lambda f: f.nested("header")), 401, INVALID),
    "payload JSON nested 3,000 deep": (bearer(lambda f: f.nested("payload")), 401, INVALID),
    # Algorithms (RFC 8725 §2.1, §3.1): only RS256 with the configured key
    "alg none": (bearer(lambda f: jwt.encode(f.claims(), None, algorithm="none")), 401, INVALID),
    "HS256 keyed with the public key": (bearer(lambda f: f.hs256_with_public_key()), 401, INVALID),
    "PS256, right key": (bearer(lambda f: f.mint(algorithm="PS256")), 401, INVALID),
    "RS384, right key": (bearer(lambda f: f.mint(algorithm="RS384")), 401, INVALID),
    "RS512, right key": (bearer(lambda f: f.mint(algorithm="RS512")), 401, INVALID),
    "foreign key": (bearer(lambda f: f.mint(key=f.attacker_key)), 401, INVALID),
    "payload swapped for admin": (bearer(lambda f: f.with_payload(scope="admin")), 401, INVALID),
    "signature flipped": (bearer(lambda f: f.with_flipped_signature()), 401, INVALID),
    # Key-selection headers are never followed (RFC 8725 §3.10)
    "jku to the attacker's JWKS": (
        bearer(lambda f: f.mint(key=f.attacker_key, headers={"jku": f.jwks_url, "kid": "x"})),
        401,
        INVALID,
    ),
    "x5u to the attacker's key": (
        bearer(lambda f: f.mint(key=f.attacker_key, headers={"x5u": f.jwks_url})),
        401,
        INVALID,
    ),
    "embedded jwk of the attacker": (
        bearer(lambda f: f.mint(key=f.attacker_key, headers={"jwk": f.attacker_jwk})),
        401,
        INVALID,
    ),
    "kid pointing at a file": (
        bearer(lambda f: f.mint(key=f.attacker_key, headers={"kid": "../../public.pem"})),
        401,
        INVALID,
    ),
    "unknown crit header": (
        bearer(lambda f: f.mint(headers={"crit": ["x-policy"], "x-policy": 1})),
        401,
        INVALID,
    ),
    # Claims (RFC 7519, RFC 9068, RFC 8707)
    "wrong issuer": (bearer(lambda f: f.mint(iss="http://evil.example")), 401, INVALID),
    "no issuer": (bearer(lambda f: f.mint(iss=None)), 401, INVALID),
    "wrong audience": (bearer(lambda f: f.mint(aud="http://localhost:1/mcp")), 401, INVALID),
    "no audience": (bearer(lambda f: f.mint(aud=None)), 401, INVALID),
    "audience list without us": (bearer(lambda f: f.mint(aud=["a", "b"])), 401, INVALID),
    "expired": (bearer(lambda f: f.mint(exp=int(time.time()) - 60)), 401, INVALID),
    "nbf an hour ahead": (bearer(lambda f: f.mint(nbf=int(time.time()) + HOUR)), 401, INVALID),
    "no exp": (bearer(lambda f: f.mint(exp=None)), 401, INVALID),
    "exp as a string": (bearer(lambda f: f.mint(exp=str(NOW + HOUR))), 401, INVALID),
    "exp as a word": (bearer(lambda f: f.mint(exp="tomorrow")), 401, INVALID),
    "exp as a boolean": (bearer(lambda f: f.mint(exp=True)), 401, INVALID),
    # Claims FastMCP lets through (RFC 9068 §2.2; a signed token from a buggy issuer)
    "exp Infinity": (bearer(lambda f: f.mint(exp=float("inf"))), 401, INVALID),
    "exp 1e400": (bearer(lambda f: f.signed_json(exp="1e400")), 401, INVALID),
    "exp -Infinity": (bearer(lambda f: f.signed_json(exp="-Infinity")), 401, INVALID),
    "exp NaN": (bearer(lambda f: f.signed_json(exp="NaN")), 401, INVALID),
    "exp 1e308": (bearer(lambda f: f.mint(exp=1e308)), 401, INVALID),
    "exp 10**30": (bearer(lambda f: f.mint(exp=10**30)), 401, INVALID),
    "exp of 4,300 digits": (bearer(lambda f: f.mint(exp=int("9" * 4300))), 401, INVALID),
    "exp two days ahead": (bearer(lambda f: f.mint(exp=NOW + 2 * 24 * HOUR)), 401, INVALID),
    "nbf NaN": (bearer(lambda f: f.signed_json(nbf="NaN")), 401, INVALID),
    "nbf a string": (bearer(lambda f: f.mint(nbf="0")), 401, INVALID),
    "iat an hour ahead": (bearer(lambda f: f.mint(iat=int(time.time()) + HOUR)), 401, INVALID),
    "iat a string": (bearer(lambda f: f.mint(iat="now")), 401, INVALID),
    "iat Infinity": (bearer(lambda f: f.mint(iat=float("inf"))), 401, INVALID),
    "no sub": (bearer(lambda f: f.mint(sub=None)), 401, INVALID),
    "empty sub": (bearer(lambda f: f.mint(sub="")), 401, INVALID),
    "sub a number": (bearer(lambda f: f.mint(sub=42)), 401, INVALID),
    "sub a lone surrogate": (bearer(lambda f: f.signed_json(sub='"\\ud800"')), 401, INVALID),
    "a valid token over 8 KB": (bearer(lambda f: f.mint(pad="x" * 8192)), 401, INVALID),
    # Scopes (MCP authorization: a valid token without the needed scope is 403)
    "no scope claim": (bearer(lambda f: f.mint(scope=None)), 403, SCOPE),
    "scope without read": (bearer(lambda f: f.mint(scope="write admin")), 403, SCOPE),
    "scope READ in capitals": (bearer(lambda f: f.mint(scope="READ")), 403, SCOPE),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_request_gets_the_exact_refusal(live_server, forge, case):
    make, status, kind = CASES[case]
    expected = {
        "scheme": "Bearer",
        "scope": server.BASE_SCOPE,
        "resource_metadata": f"http://localhost:{live_server.port}"
        "/.well-known/oauth-protected-resource/mcp",
    }
    if kind != MISSING:
        expected["error"] = kind
    fetches = forge.jwks.fetches
    response = live_server.post(**make(forge))
    assert response.status_code == status, response.text
    assert challenge(response) == expected, response.text
    assert forge.jwks.fetches == fetches, "the server fetched a key from a URL in the token"


def test_the_negative_matrix_has_as_many_cases_as_the_docs_say():
    assert f"a {len(CASES)}-case negative matrix" in (ROOT / "docs" / "security.md").read_text()


def test_oversized_headers_get_400_before_any_verifier(live_server):
    # httpx refuses to send 200 KB headers and reads no answer, so talk HTTP/1.1 by hand.
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /mcp HTTP/1.1\r\nHost: localhost:{live_server.port}\r\n"
            f"Authorization: Bearer {'A' * 200_000}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 400 Bad Request"
    assert live_server.post().status_code == 401  # and the server is still there


BAD_TIMES = ["1e400", "-1e400", "Infinity", "-Infinity", "NaN", "1e308", "-1", "null", "true"]
BAD_TIMES += ['"1700000000"', "[]", "{}", "1.7976931348623157e308", "99999999999"]


def random_authorization(rng: random.Random, valid: str, forge: Forge) -> str:
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    kind = rng.randrange(6)
    if kind == 5:  # signed with the real key, one time claim out of range or not a number
        value = rng.choice([*BAD_TIMES, "9" * rng.randrange(12, 4300)])
        return "Bearer " + forge.signed_json(**{rng.choice(["exp", "nbf", "iat"]): value})
    if kind == 0:  # noise
        return "".join(rng.choices(printable, k=rng.randrange(1, 300))).strip() or "x"
    if kind == 1:  # noise behind the right scheme
        return "Bearer " + "".join(rng.choices(printable, k=rng.randrange(1, 2000))).strip()
    if kind == 2:  # three base64url-looking segments
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        parts = ["".join(rng.choices(alphabet, k=rng.randrange(0, 400))) for _ in range(3)]
        return "Bearer " + ".".join(parts)
    # a valid token with one character changed, dropped or added (never a segment's last
    # character: base64url's padding bits there can change without changing the bytes)
    token = list(valid)
    i = rng.choice([i for i in range(len(token) - 1) if "." not in valid[i : i + 2]])
    if kind == 3:
        token[i] = rng.choice([c for c in "AZaz09-_." if c != token[i]])
    elif rng.random() < 0.5:
        token.insert(i, rng.choice("Aa0-_."))
    else:
        del token[i]
    return "Bearer " + "".join(token)


def test_a_thousand_random_authorization_headers_get_4xx_and_the_server_lives(
    live_server, mint, forge
):
    rng = random.Random(8725)
    valid = mint()
    statuses = {}
    with httpx.Client(headers=MCP_HEADERS, timeout=10) as http:
        for _ in range(1000):
            header = random_authorization(rng, valid, forge)
            r = http.post(live_server.url, json={}, headers={"Authorization": header})
            statuses.setdefault(r.status_code, header)
    assert all(400 <= status < 500 for status in statuses), statuses
    assert live_server.post(mint()).status_code == 200


def test_an_admin_token_sees_and_calls_the_admin_tool(live_server, mint):
    token = mint(scope="read admin")
    assert "server_config" in call(live_server.url, token)
    config = call(live_server.url, token, "server_config")
    assert config == {"issuer": client.ISSUER, "audience": live_server.url, "scope": "read"}


def test_whoami_tells_subject_and_scopes_and_never_the_token(live_server, mint):
    token = mint(scope="read write")
    answer = call(live_server.url, token, "whoami")
    assert answer == {"subject": client.SUBJECT, "scopes": ["read", "write"]}
    assert token.split(".")[2] not in json.dumps(answer)


def test_the_protected_resource_metadata_follows_rfc_9728(live_server):
    url = f"http://localhost:{live_server.port}/.well-known/oauth-protected-resource/mcp"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "resource": live_server.url,
        "authorization_servers": [client.ISSUER],
        "scopes_supported": ["read"],
        "bearer_methods_supported": ["header"],
    }


def test_a_foreign_origin_is_refused_with_403(live_server, mint):
    response = live_server.post(mint(), headers={"Origin": "http://evil.example"})
    assert response.status_code == 403, response.text
    assert response.text == "Forbidden Origin"


def test_a_local_origin_is_let_through(live_server, mint):
    response = live_server.post(mint(), headers={"Origin": "http://localhost:6274"})
    assert response.status_code == 200, response.text


def test_a_foreign_host_is_refused_with_421(live_server, mint):
    response = live_server.post(mint(), headers={"Host": "evil.example"})
    assert response.status_code == 421, response.text


@pytest.mark.parametrize(
    "make, level, reason",
    [
        (lambda f: f.mint(exp=NOW - 60), "INFO", "token expired"),
        (lambda f: f.mint(aud="http://localhost:1/mcp"), "WARNING", "audience mismatch"),
        (lambda f: f.mint(iss="http://evil.example"), "WARNING", "issuer mismatch"),
        (lambda f: f.mint(nbf=NOW + HOUR), "INFO", "token not yet valid (nbf)"),
        (lambda f: f.mint(key=f.attacker_key), "DEBUG", "JWT signature/format invalid"),
        (lambda f: f.mint(exp=None), "WARNING", "Missing claim: 'exp'"),
        (lambda f: f.mint(sub=None), "WARNING", "Missing claim: 'sub'"),
        (lambda f: f.mint(iat=NOW + HOUR), "WARNING", "The token was issued in the future"),
        (lambda f: f.mint(iat="now"), "WARNING", "Claim 'iat' must be a NumericDate value"),
        (lambda f: f.mint(exp=NOW + 2 * 24 * HOUR), "WARNING", "further ahead than MAX_LIFE"),
        (lambda f: f.signed_json(exp="Infinity"), "WARNING", "cannot convert float infinity"),
        (lambda f: f.nested("header"), "WARNING", "maximum recursion depth exceeded"),
    ],
    ids=[
        *("expired", "audience", "issuer", "nbf", "signature", "no exp", "no sub"),
        *("iat ahead", "iat a string", "exp too far", "exp Infinity", "nested JSON"),
    ],
)
def test_the_server_logs_why_it_refused_and_the_client_is_not_told(
    live_server, forge, make, level, reason
):
    before = len(live_server.log())
    response = live_server.post(make(forge))
    assert response.status_code == 401, response.text
    new_lines = live_server.log_once_it_says(reason)[before:].splitlines()
    assert [line for line in new_lines if line.startswith(f"{level}: ") and reason in line], (
        new_lines
    )
    # The answer is the same whatever the reason: FastMCP's generic 401.
    generic = live_server.post("not-a-jwt")
    assert (response.text, challenge(response)) == (generic.text, challenge(generic))


def test_a_token_value_cannot_break_a_log_line(live_server, mint):
    # FastMCP logs the client_id of a token with the wrong audience; this one holds a newline.
    forged_line = "WARNING: Bearer token rejected for client admin: forged"
    client_id = f"x\n{forged_line}\r\n\x1b[2J"
    before = len(live_server.log())
    response = live_server.post(mint(aud="http://localhost:1/mcp", client_id=client_id))
    assert response.status_code == 401, response.text
    lines = live_server.log_once_it_says("audience mismatch")[before:].splitlines()
    (refusal,) = [line for line in lines if "audience mismatch" in line]
    assert "x\\nWARNING: Bearer token rejected for client admin: forged\\r\\n\\x1b[2J" in refusal
    assert forged_line not in lines and not any("\x1b" in line for line in lines), lines


def test_a_forwarded_for_header_cannot_forge_or_colour_an_access_log_line(live_server, mint):
    # uvicorn would trust X-Forwarded-For from any loopback peer and log it as the client.
    forged = '203.0.113.9\x1b[2J\x1b[31m - "POST /admin HTTP/1.1" 200 OK'
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: localhost:{live_server.port}\r\n"
        f"Authorization: Bearer {mint()}\r\nX-Forwarded-For: {forged}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    before = len(live_server.log())
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 "), answer
    log = live_server.log_once_it_says('"POST /mcp HTTP/1.1"')[before:]
    assert "127.0.0.1:" in log and "203.0.113.9" not in log and "\x1b" not in log, log


def test_the_server_hands_out_no_session_to_hold(live_server, mint):
    # Stateless: nothing kept per client between requests, so nothing for one client to exhaust.
    opened = live_server.post(mint())
    assert opened.status_code == 200, opened.text
    assert "mcp-session-id" not in opened.headers, opened.headers


def test_a_token_holder_sending_10000_requests_does_not_make_another_fail(live_server, mint):
    greedy, patient = mint(sub="greedy"), mint(sub="patient")
    # 10,000 `initialize` requests (each would open a session on a stateful server), and the
    # other holder's request every 1,000th; 8 in flight at a time, on loopback.
    tokens = [patient if i % 1000 == 500 else greedy for i in range(10_010)]

    async def flood() -> list[tuple[str, int]]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(headers=MCP_HEADERS, timeout=30, limits=limits) as http:
            in_flight = asyncio.Semaphore(8)

            async def send(token: str) -> tuple[str, int]:
                async with in_flight:
                    headers = {"Authorization": f"Bearer {token}"}
                    answer = await http.post(live_server.url, json=INITIALIZE, headers=headers)
                    return token, answer.status_code

            return await asyncio.wait_for(asyncio.gather(*map(send, tokens)), 300)

    answers = asyncio.run(flood())
    assert [status for token, status in answers if token == patient] == [200] * 10
    assert {status for token, status in answers if token == greedy} == {200}


def test_the_server_log_holds_no_token(live_server, mint):
    """Runs last in this module: every token the tests minted so far, none in the log. Except
    where a client put one in the URL: the bare server's access log shows the whole path (the
    shipped nginx strips query strings: tests/test_deploy.py)."""
    lines = live_server.log().splitlines()
    log = "\n".join(line for line in lines if "?access_token=" not in line)
    assert mint.issued
    leaked = [token[:20] for token in mint.issued if token.split(".")[2][:24] in log]
    assert not leaked, f"tokens in the server log: {leaked}"
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]
