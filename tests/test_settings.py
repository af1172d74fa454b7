"""Settings, not code edits: the public URL drives the audience, the metadata and the allowed
Host; every flag has its environment twin; `fastmcp run server.py` serves the same app."""

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from conftest import INITIALIZE, MCP_HEADERS, ROOT, free_port, run, running, serve

PUBLIC = "http://127.0.0.2:9443/mcp"  # a proxy's address: nothing listens there, no DNS needed
METADATA = "http://127.0.0.2:9443/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def behind_a_proxy(tmp_path_factory):
    """server.py bound to 127.0.0.1, told that clients reach it as PUBLIC."""
    port = free_port()
    args = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--public-url", PUBLIC]
    with running(args, tmp_path_factory.mktemp("proxied") / "server.log") as srv:
        srv.port = port  # the banner names the public URL's port; this is the bound one
        yield srv


def post(srv, token: str | None = None, **headers) -> httpx.Response:
    """An `initialize` to the server's real port, sent as if through the proxy at PUBLIC."""
    sent = {**MCP_HEADERS, "Host": "127.0.0.2:9443", **headers}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    port_url = f"http://127.0.0.1:{srv.port}/mcp"
    return httpx.post(port_url, json=INITIALIZE, headers=sent, timeout=10)


def test_the_server_prints_the_public_url(behind_a_proxy):
    assert f"Starting FastMCP server on {PUBLIC}" in behind_a_proxy.log().splitlines()


def test_a_token_for_the_public_url_is_served_with_the_proxys_host(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=PUBLIC))
    assert response.status_code == 200, response.text


def test_a_token_for_the_bound_address_is_refused_there(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=f"http://localhost:{behind_a_proxy.port}/mcp"))
    assert response.status_code == 401, response.text
    assert "audience mismatch" in behind_a_proxy.log_once_it_says("audience mismatch")


def test_the_challenge_and_the_metadata_name_the_public_url(behind_a_proxy):
    response = post(behind_a_proxy)
    assert response.status_code == 401, response.text
    assert f'resource_metadata="{METADATA}"' in response.headers["www-authenticate"]
    port = behind_a_proxy.port
    path = "/.well-known/oauth-protected-resource/mcp"
    metadata = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": "127.0.0.2:9443"})
    assert metadata.json()["resource"] == PUBLIC, metadata.text


def test_a_host_nobody_set_gets_421(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=PUBLIC), Host="mcp.example.com")
    assert response.status_code == 421, response.text
    assert response.text == "Misdirected Request"


def test_a_foreign_origin_gets_403_without_a_challenge(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=PUBLIC), Origin="http://evil.example")
    assert response.status_code == 403, response.text
    assert (response.text, response.headers.get("www-authenticate")) == ("Forbidden Origin", None)


def test_more_hosts_come_from_fastmcps_own_setting(mint, tmp_path):
    env = {**os.environ, "FASTMCP_HTTP_ALLOWED_HOSTS": '["mcp.example.com"]'}
    with serve(log_path=tmp_path / "log", env=env) as srv:
        headers = {**MCP_HEADERS, "Host": "mcp.example.com"}
        answer = httpx.post(srv.url, json=INITIALIZE, headers=headers, timeout=10)
        assert answer.status_code == 401, answer.text  # past the Host check, to the token check


def test_every_flag_has_an_environment_twin(mint, tmp_path):
    env = {**os.environ, "MCP_PUBLIC_URL": PUBLIC, "MCP_PORT": str(port := free_port())}
    with running([sys.executable, str(ROOT / "server.py")], tmp_path / "log", env=env) as srv:
        srv.port = port
        assert post(srv, mint(aud=PUBLIC)).status_code == 200
    wide = {**os.environ, "COLUMNS": "300"}  # one line per flag
    help_text = run([sys.executable, str(ROOT / "server.py"), "--help"], env=wide).stdout
    options = re.findall(r"^  (--[\w-]+) .*\[env: (\w+)\]$", help_text, re.M)
    assert options == [
        (flag, "MCP_" + flag[2:].upper().replace("-", "_"))
        for flag in ("--host", "--port", "--public-url", "--issuer", "--public-key", "--jwks-uri")
    ], help_text


def test_the_server_listens_on_ipv6_loopback(mint, tmp_path):
    with serve("--host", "::1", log_path=tmp_path / "log") as srv:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {mint(aud=srv.url)}"}
        url = f"http://[::1]:{srv.port}/mcp"
        response = httpx.post(url, json=INITIALIZE, headers=headers, timeout=10)
        assert response.status_code == 200, response.text


def test_fastmcp_run_serves_the_same_protected_app(mint, tmp_path):
    """`MCP_PUBLIC_URL=http://localhost:P/mcp fastmcp run server.py --transport http --port P`"""
    port = free_port()
    url = f"http://localhost:{port}/mcp"
    fastmcp = os.path.join(os.path.dirname(sys.executable), "fastmcp")
    command = [fastmcp, "run", str(ROOT / "server.py"), "--transport", "http", "--port", str(port)]
    log_path = tmp_path / "log"
    with log_path.open("w") as log:
        env = {**os.environ, "MCP_PUBLIC_URL": url}
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # until uvicorn says it listens: 60 s at most
            if "Uvicorn running on" in log_path.read_text() or proc.poll() is not None:
                break
            time.sleep(0.1)
        headers = {**MCP_HEADERS, "Origin": "http://evil.example"}
        refused = httpx.post(url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
        assert refused.status_code == 401, refused.text
        token = {**MCP_HEADERS, "Authorization": f"Bearer {mint(aud=url)}"}
        served = httpx.post(url, json=INITIALIZE, headers=token, timeout=10)
        assert served.status_code == 200, served.text
        foreign = httpx.post(url, json=INITIALIZE, headers={**token, **headers}, timeout=10)
        assert foreign.status_code == 403, foreign.text  # the Origin check is on there too
        assert "mcp-session-id" not in served.headers  # and it is stateless
    finally:
        proc.terminate()
        proc.wait(timeout=10)
