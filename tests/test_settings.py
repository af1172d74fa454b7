"""Settings, not code edits: the public URL drives the audience, the metadata and the allowed
Host; every flag has its environment twin; the two scripts run when copied alone."""

import os
import shutil
import subprocess
import sys

import httpx
import pytest

from conftest import INITIALIZE, MCP_HEADERS, ROOT, free_port, run, running

PUBLIC = "http://127.0.0.2:9443/mcp"  # a proxy's address: nothing listens there, no DNS needed
METADATA = "http://127.0.0.2:9443/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def behind_a_proxy(keys, tmp_path_factory):
    """server.py bound to 127.0.0.1, told that clients reach it as PUBLIC."""
    port = free_port()
    args = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--public-url", PUBLIC]
    log = tmp_path_factory.mktemp("proxied") / "server.log"
    with running([*args, "--public-key", str(keys / "public.pem")], log) as srv:
        srv.port = port  # the banner names the public URL's port; this is the bound one
        yield srv


def post(srv, token: str | None = None, **headers) -> httpx.Response:
    """An `initialize` to the server's real port, sent as if through the proxy at PUBLIC."""
    sent = {**MCP_HEADERS, "Host": "127.0.0.2:9443", **headers}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    port_url = f"http://127.0.0.1:{srv.port}/mcp"
    return httpx.post(port_url, json=INITIALIZE, headers=sent, timeout=10)


def test_the_server_prints_one_url_the_public_one(behind_a_proxy):
    urls = [line for line in behind_a_proxy.log().splitlines() if "http://" in line]
    assert urls[0] == f"Starting FastMCP server on {PUBLIC}", urls
    assert not [line for line in urls[1:] if "/mcp" in line and "HTTP/1.1" not in line], urls


def test_a_token_for_the_public_url_is_served_with_the_proxys_host(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=PUBLIC))
    assert response.status_code == 200, response.text


def test_a_token_for_the_bound_address_is_refused_there(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=f"http://localhost:{behind_a_proxy.port}/mcp"))
    assert response.status_code == 401, response.text
    assert "audience mismatch" in behind_a_proxy.log()


def test_the_challenge_and_the_metadata_name_the_public_url(behind_a_proxy):
    response = post(behind_a_proxy)
    assert response.status_code == 401, response.text
    assert f'resource_metadata="{METADATA}"' in response.headers["www-authenticate"]
    port = behind_a_proxy.port
    path = "/.well-known/oauth-protected-resource/mcp"
    metadata = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": "127.0.0.2:9443"})
    assert metadata.json()["resource"] == PUBLIC, metadata.text


def test_a_host_nobody_set_gets_421_and_a_log_line_naming_it(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=PUBLIC), Host="mcp.example.com")
    assert response.status_code == 421, response.text
    log = behind_a_proxy.log_once_it_says("mcp.example.com")
    (line,) = [line for line in log.splitlines() if "mcp.example.com" in line]
    assert (
        "Refused Host mcp.example.com, Origin None (421)" in line
        and "FASTMCP_HTTP_ALLOWED_HOSTS" in line
    ), line


def test_every_flag_has_an_environment_twin(keys, mint, tmp_path):
    env = {**os.environ, "MCP_PUBLIC_URL": PUBLIC, "MCP_PUBLIC_KEY": str(keys / "public.pem")}
    env["MCP_PORT"] = str(port := free_port())
    with running([sys.executable, str(ROOT / "server.py")], tmp_path / "log", env=env) as srv:
        assert f"Starting FastMCP server on {PUBLIC}" in srv.log()
        srv.port = port
        assert post(srv, mint(aud=PUBLIC)).status_code == 200
    help_text = run([sys.executable, str(ROOT / "server.py"), "--help"]).stdout
    for flag in [arg for arg in help_text.split() if arg.startswith("--") and arg != "--help"]:
        twin = "MCP_" + flag[2:].upper().replace("-", "_")
        assert f"env {twin}" in " ".join(help_text.split()), f"{flag} has no {twin}"


def test_the_server_listens_on_ipv6_loopback(keys, mint, tmp_path):
    args = [sys.executable, str(ROOT / "server.py"), "--host", "::1", "--port", "0"]
    with running([*args, "--public-key", str(keys / "public.pem")], tmp_path / "log") as srv:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {mint(aud=srv.url)}"}
        url = f"http://[::1]:{srv.port}/mcp"
        response = httpx.post(url, json=INITIALIZE, headers=headers, timeout=10)
        assert response.status_code == 200, response.text


def test_the_two_scripts_copied_alone_run_with_openssl_keys(tmp_path):
    """A copier's project: `uv init`, `uv add fastmcp pyjwt`, the two files, openssl's keys."""
    uv, openssl = os.environ.get("UV") or shutil.which("uv"), shutil.which("openssl")
    if uv is None or openssl is None:
        pytest.skip(f"needs uv and openssl (uv: {uv}, openssl: {openssl})")
    project = tmp_path / "mine"
    assert run([uv, "init", "--quiet", "--no-workspace", str(project)]).returncode == 0
    added = run([uv, "add", "--quiet", "--directory", str(project), "fastmcp", "pyjwt"], 300)
    if added.returncode != 0 and "Failed to fetch" in added.stderr:
        pytest.skip(f"PyPI unreachable: {added.stderr.strip()[-200:]}")
    assert added.returncode == 0, added.stderr
    for name in ("server.py", "client.py"):
        shutil.copy(ROOT / name, project / name)
    for command in (
        "openssl genpkey -algorithm RSA -out private.pem -pkeyopt rsa_keygen_bits:2048",
        "openssl rsa -in private.pem -pubout -out public.pem",
    ):
        subprocess.run(command.split(), cwd=project, capture_output=True, check=True)
    uv_run = [uv, "run", "--quiet", "--directory", str(project)]
    with running([*uv_run, "server.py", "--port", "0"], tmp_path / "log", cwd=project) as srv:
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        result = run([*uv_run, "client.py", "--url", srv.url], 120, env=env)
    assert result.returncode == 0, result.stderr
    assert "💬 Greet result: Hello, FastMCP!" in result.stdout.splitlines(), result.stdout


def test_a_foreign_origin_gets_403_and_a_log_line_naming_it(behind_a_proxy, mint):
    response = post(behind_a_proxy, mint(aud=PUBLIC), Origin="http://evil.example")
    assert response.status_code == 403, response.text
    assert "Origin http://evil.example (403)" in behind_a_proxy.log_once_it_says("evil.example")
