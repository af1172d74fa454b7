"""A real authorization server: panva's oidc-provider (OpenID Certified), set up as someone else
would (another client id, its own keys), issues RFC 9068 JWT access tokens by client
credentials; server.py checks them against its JWKS, and the clients find it through the
server's RFC 9728 metadata. Skipped, with the reason, only when Node.js or the npm registry is
out of reach."""

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time

import httpx
import jwt
import pytest
from fastmcp import Client
from fastmcp.client.auth import ClientCredentialsOAuthProvider

from authserver import Unavailable, get_token, install, keygen, make_keys, start
from conftest import ROOT, free_port, run, running

CLIENT_ID = "someone-elses-client"
SECRET = secrets.token_urlsafe(24)
TTL = 8  # seconds the AS's tokens live: long enough for the rotation test, short to expire one


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """The authorization server, for two resources: our server's URL and another one's."""
    folder = tmp_path_factory.mktemp("idp")
    try:
        node_dir = install(folder)
    except Unavailable as e:
        pytest.skip(str(e))
    keys = folder / "keys.jwks.json"
    make_keys(keys, 1)
    issuer, port = f"http://127.0.0.1:{free_port()}", free_port()
    url, other = f"http://localhost:{port}/mcp", "http://localhost:1/mcp"
    log = folder / "as.log"
    with start(node_dir, issuer, [url, other], CLIENT_ID, SECRET, keys, log, token_ttl=TTL):
        # The AS is up before the MCP server sees its first token: a failed JWKS fetch would
        # hold back the next one for --jwks-refresh seconds.
        args = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--issuer", issuer]
        args += ["--jwks-uri", f"{issuer}/jwks", "--jwks-refresh", "1"]
        with running(args, folder / "server.log") as srv:
            srv.issuer, srv.other, srv.keys, srv.as_log = issuer, other, keys, log
            yield srv


def token(idp, scope: str = "read", resource: str | None = None) -> str:
    return get_token(idp.issuer, CLIENT_ID, SECRET, resource or idp.url, scope)


def client_py(idp, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MCP_CLIENT_SECRET": SECRET, "PYTHONIOENCODING": "utf-8"}
    command = [sys.executable, str(ROOT / "client.py"), "--url", idp.url, "--client-id", CLIENT_ID]
    return run([*command, "--issuer", idp.issuer, *args], env=env)


def test_its_tokens_are_rfc_9068_access_tokens_for_our_url(idp):
    issued = token(idp, "read write")
    assert jwt.get_unverified_header(issued)["typ"] == "at+jwt"
    claims = jwt.decode(issued, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["sub"]) == (idp.issuer, idp.url, CLIENT_ID)
    assert idp.post(issued).status_code == 200


def test_its_token_for_another_resource_is_refused(idp):
    response = idp.post(token(idp, resource=idp.other))
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_its_token_without_the_read_scope_gets_403(idp):
    response = idp.post(token(idp, scope="write"))
    assert response.status_code == 403, response.text
    assert 'scope="read"' in response.headers["www-authenticate"]


def test_its_expired_token_is_refused(idp):
    expired = token(idp)
    time.sleep(TTL + 0.5)
    assert idp.post(expired).status_code == 401


def test_a_token_signed_with_a_key_it_never_published_is_refused(idp, tmp_path):
    foreign = tmp_path / "foreign.jwks.json"
    make_keys(foreign, 1)
    key = jwt.PyJWKSet.from_json(foreign.read_text()).keys[0]
    claims = jwt.decode(token(idp), options={"verify_signature": False})
    forged = jwt.encode(claims, key.key, algorithm="RS256", headers={"kid": key.key_id})
    assert idp.post(forged).status_code == 401


def test_client_py_discovers_the_authorization_server_and_greets(idp):
    result = client_py(idp)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "💬 Greet result: Hello, FastMCP!" in lines, result.stdout
    assert f"🪪 Whoami: {{'subject': '{CLIENT_ID}', 'scopes': ['read']}}" in lines, result.stdout


def test_asked_for_the_wrong_scope_the_client_asks_again_with_the_challenges(idp):
    before = idp.as_log.read_text()
    result = client_py(idp, "--scopes", "write")
    assert result.returncode == 0, result.stderr
    issued = [
        line for line in idp.as_log.read_text()[len(before) :].splitlines() if "issued" in line
    ]
    assert 'scope "write"' in issued[0] and "read" in issued[-1], issued  # 403, then read


def test_a_wrong_secret_is_one_line(idp):
    env = {**os.environ, "MCP_CLIENT_SECRET": "wrong"}
    command = [sys.executable, str(ROOT / "client.py"), "--url", idp.url, "--client-id", CLIENT_ID]
    result = run([*command, "--issuer", idp.issuer], env=env)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_fastmcp_client_credentials_need_only_the_url_the_id_and_the_secret(idp):
    auth = ClientCredentialsOAuthProvider(
        client_id=CLIENT_ID, client_secret=SECRET, issuer=idp.issuer
    )

    async def go():
        async with Client(idp.url, auth=auth) as mcp:
            names = [tool.name for tool in await mcp.list_tools()]
            return names, (await mcp.call_tool("greet", {"name": "AS"})).data

    assert asyncio.run(go()) == (["greet", "whoami"], "Hello, AS!")


def test_a_rotated_key_is_used_and_a_removed_one_stops_its_tokens(idp):
    old_kids = [key["kid"] for key in json.loads(idp.keys.read_text())["keys"]]
    before_rotation = token(idp)
    assert idp.post(before_rotation).status_code == 200  # and it sits in the server's cache
    new_kid = keygen(idp.keys, "--add")[0]  # the AS reloads the file within a second
    deadline = time.monotonic() + 10
    while jwt.get_unverified_header(fresh := token(idp))["kid"] != new_kid:
        assert time.monotonic() < deadline, "the AS did not sign with the new key"
        time.sleep(0.2)
    time.sleep(1.2)  # --jwks-refresh 1: the server may fetch again
    assert idp.post(fresh).status_code == 200  # new kid: one fetch, accepted
    assert idp.post(before_rotation).status_code == 200  # old key still published
    keygen(idp.keys, "--remove-oldest")
    while old_kids[0] in httpx.get(f"{idp.issuer}/jwks").text:
        assert time.monotonic() < deadline + 10, "the AS kept publishing the removed key"
        time.sleep(0.2)
    time.sleep(1.2)
    forged_kid = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "new?"})
    idp.post(forged_kid)  # an unknown kid makes the server fetch the JWKS again...
    assert idp.post(before_rotation).status_code == 401  # ...and the cached token is refused
    assert idp.post(token(idp)).status_code == 200


def test_the_demo_command_runs_the_whole_real_authorization_server_flow():
    command = [sys.executable, "-m", "fastmcp_auth", "demo", "--authserver"]
    result = run(command, timeout=400, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    if result.returncode != 0 and "npm registry" in result.stderr:
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "💬 Greet result: Hello, FastMCP!" in result.stdout, result.stdout


def test_the_docs_walkthrough_runs_as_written():
    doc = (ROOT / "docs" / "identity-providers.md").read_text()
    (script,) = [b for b in re.findall(r"```bash\n(.*?)```", doc, re.S) if "kill %1" in b]
    for port in (9000, 8000):  # the walkthrough's fixed ports, as a reader runs it
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is in use; the walkthrough needs it")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    # A session of its own, so that what the script leaves running is stopped even if it fails.
    bash = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = bash.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        stdout, stderr = "", "the walkthrough took over 5 minutes"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bash.pid, signal.SIGTERM)
    result = subprocess.CompletedProcess(bash.args, bash.returncode, stdout, stderr)
    if result.returncode != 0 and "npm" in result.stderr and "ERR" in result.stderr.upper():
        pytest.skip(f"npm could not install: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "🪪 Whoami: {'subject': 'demo-client', 'scopes': ['read']}" in lines, result.stdout
    assert lines.count("💬 Greet result: Hello, FastMCP!") == 2, result.stdout
