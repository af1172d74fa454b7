"""A real authorization server: panva's oidc-provider (OpenID Certified), set up as someone else
would (another client id, its own keys), issues RFC 9068 JWT access tokens by client
credentials; server.py checks them against its JWKS, and the clients find it through the
server's RFC 9728 metadata. Needs `npm ci --prefix authserver` (.ci/run does it)."""

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

from authserver import get_token, installed, keygen, make_keys, start
from conftest import ROOT, client_py, free_port, one_line_error, run, running

pytestmark = pytest.mark.real

CLIENT_ID = "someone-elses-client"
SECRET = secrets.token_urlsafe(24)
TTL = 150  # seconds the AS's tokens live: through the rotation test (two 30 s waits)
REFRESH = 30  # FastMCP's jwks_refresh_interval: seconds at least between two JWKS fetches


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """The authorization server, for two resources: our server's URL and another one's."""
    folder = tmp_path_factory.mktemp("idp")
    node_dir = installed()
    keys = folder / "keys.jwks.json"
    make_keys(keys, 1)
    issuer, port = f"http://127.0.0.1:{free_port()}", free_port()
    url, other = f"http://localhost:{port}/mcp", "http://localhost:1/mcp"
    log = folder / "as.log"
    with start(node_dir, issuer, [url, other], CLIENT_ID, SECRET, keys, log, token_ttl=TTL):
        # The AS is up before the MCP server sees its first token: a failed JWKS fetch would
        # hold back the next one for 30 s (FastMCP's jwks_refresh_interval).
        args = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--issuer", issuer]
        with running([*args, "--jwks-uri", f"{issuer}/jwks"], folder / "server.log") as srv:
            srv.issuer, srv.other, srv.keys, srv.as_log = issuer, other, keys, log
            yield srv


def token(idp, scope: str = "read", resource: str | None = None) -> str:
    return get_token(idp.issuer, CLIENT_ID, SECRET, resource or idp.url, scope)


def with_secret(idp, *args: str, secret: str = SECRET) -> subprocess.CompletedProcess:
    """client.py with --client-id and its secret, finding the authorization server through the
    MCP server; --issuer is the idp's unless `args` give another."""
    pinned = [] if "--issuer" in args else ["--issuer", idp.issuer]
    command = ["--url", idp.url, "--client-id", CLIENT_ID, *pinned, *args]
    return client_py(*command, env={"MCP_CLIENT_SECRET": secret})


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


def test_a_token_signed_with_a_key_it_never_published_is_refused(idp, tmp_path):
    foreign = tmp_path / "foreign.jwks.json"
    make_keys(foreign, 1)
    key = jwt.PyJWKSet.from_json(foreign.read_text()).keys[0]
    claims = jwt.decode(token(idp), options={"verify_signature": False})
    forged = jwt.encode(claims, key.key, algorithm="RS256", headers={"kid": key.key_id})
    assert idp.post(forged).status_code == 401


def test_client_py_discovers_the_authorization_server_and_greets(idp):
    result = with_secret(idp)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no deprecation warning: it names the issuer
    lines = result.stdout.splitlines()
    assert f"🔐 Token from the authorization server {idp.issuer}, as {CLIENT_ID}" in lines
    assert "💬 Greet result: Hello, FastMCP!" in lines, result.stdout
    admin = f"🪪 Whoami: {{'subject': '{CLIENT_ID}', 'scopes': ['read', 'admin']}}"
    assert admin in lines, result.stdout  # read at first; the admin tool's 403: read admin


def test_client_py_asks_for_the_admin_scope_and_calls_the_admin_tool(idp):
    result = with_secret(idp, "--scopes", "read admin")
    assert result.returncode == 0, result.stderr
    assert any(
        line.startswith("🔒 Admin tool server_config:") for line in result.stdout.splitlines()
    )


def test_asked_for_the_wrong_scope_the_client_asks_again_with_the_challenges(idp):
    before = idp.as_log.read_text()
    result = with_secret(idp, "--scopes", "write")
    assert result.returncode == 0, result.stderr
    issued = [
        line for line in idp.as_log.read_text()[len(before) :].splitlines() if "issued" in line
    ]
    assert 'scope "write"' in issued[0] and "read" in issued[-1], issued  # 403, then read


def test_a_wrong_secret_is_one_line_that_says_so(idp):
    line = one_line_error(with_secret(idp, secret="wrong"))
    assert '"error":"invalid_client"' in line, line


def test_an_issuer_that_is_not_the_servers_is_refused_before_the_secret_is_sent(idp):
    before = idp.as_log.read_text()
    line = one_line_error(with_secret(idp, "--issuer", "http://127.0.0.1:9"))
    assert line.endswith(f"it names {[idp.issuer]}, not --issuer http://127.0.0.1:9: nothing sent")
    assert "token" not in idp.as_log.read_text()[len(before) :]  # no token request was made


def test_print_token_with_client_id_is_refused_in_one_line(idp):
    line = one_line_error(with_secret(idp, "--print-token"))
    assert line == "Error: --print-token mints a token here: not with --client-id or --login"


def test_fastmcp_client_credentials_need_only_the_url_the_id_and_the_secret(idp):
    auth = ClientCredentialsOAuthProvider(
        client_id=CLIENT_ID, client_secret=SECRET, issuer=idp.issuer
    )

    async def go():
        async with Client(idp.url, auth=auth) as mcp:
            names = [tool.name for tool in await mcp.list_tools()]
            return names, (await mcp.call_tool("greet", {"name": "AS"})).data

    assert asyncio.run(go()) == (["greet", "whoami", "server_config"], "Hello, AS!")


def test_a_rotated_key_is_used_and_a_removed_one_stops_its_tokens(idp):
    old_kids = [key["kid"] for key in json.loads(idp.keys.read_text())["keys"]]
    before_rotation = token(idp)
    assert idp.post(before_rotation).status_code == 200  # the server has fetched the JWKS
    fetched = time.monotonic()
    new_kid = keygen(idp.keys, "--add")[0]  # the AS reloads the file within a second
    deadline = time.monotonic() + 10
    while jwt.get_unverified_header(fresh := token(idp))["kid"] != new_kid:
        assert time.monotonic() < deadline, "the AS did not sign with the new key"
        time.sleep(0.2)
    time.sleep(max(0, fetched + REFRESH + 0.5 - time.monotonic()))  # FastMCP may fetch again
    assert idp.post(fresh).status_code == 200  # a new kid: one fetch, accepted
    fetched = time.monotonic()
    keygen(idp.keys, "--remove-oldest")
    deadline = time.monotonic() + 10
    while old_kids[0] in httpx.get(f"{idp.issuer}/jwks").text:
        assert time.monotonic() < deadline, "the AS kept publishing the removed key"
        time.sleep(0.2)
    time.sleep(max(0, fetched + REFRESH + 0.5 - time.monotonic()))
    forged_kid = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "new?"})
    idp.post(forged_kid)  # an unknown kid makes the server fetch the JWKS again...
    before = len(idp.log_once_it_says("Key ID 'new?' not found in JWKS"))
    assert idp.post(before_rotation).status_code == 401  # ...and the old key's token is refused
    assert "No matching fresh JWKS key" in idp.log_once_it_says("No matching")[before:]
    assert idp.post(token(idp)).status_code == 200


def test_the_demo_command_runs_the_whole_real_authorization_server_flow():
    command = [sys.executable, "-m", "fastmcp_auth", "demo", "--authserver"]
    installed()
    result = run(command, timeout=400, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "💬 Greet result: Hello, FastMCP!" in result.stdout, result.stdout


def test_the_docs_walkthrough_runs_as_written():
    installed()
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
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "🪪 Whoami: {'subject': 'demo-client', 'scopes': ['read', 'admin']}" in lines, lines
    assert "💬 Greet result: Hello, FastMCP!" in lines, result.stdout
