"""Works with every client: --print-token, curl, the official MCP SDK, a client configuration, the
MCP Inspector and `fastmcp run`. The snippets of the README and docs/clients.md are run as
written, against the real
server (its port and the test keys put in place of the defaults)."""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import jwt
import pytest
from fastmcp import Client

from conftest import ROOT, run, run_client
from fastmcp_auth import client, server

README = (ROOT / "README.md").read_text()
OTHER_CLIENTS = (ROOT / "docs" / "clients.md").read_text()
JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def print_token(keys, url: str, *args: str) -> str:
    result = run_client(keys, "--url", url, "--print-token", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def as_written(snippet: str, live_server, keys) -> str:
    """A README snippet aimed at the test server: its port, and client.py with the test key."""
    client_py = f"{sys.executable} {ROOT / 'client.py'} --private-key {keys / 'private.pem'}"
    snippet = snippet.replace("uv run client.py --print-token", f"{client_py} --print-token")
    snippet = snippet.replace("--print-token", f"--print-token --url {live_server.url}")
    return at_port(snippet, live_server.port)


def at_port(text: str, port: int) -> str:
    """`text` with the server's URLs on `port` (the issuer, `http://localhost:8000`, stays)."""
    return text.replace("localhost:8000/", f"localhost:{port}/")


def test_print_token_prints_exactly_one_jwt_and_nothing_else(live_server, keys):
    result = run_client(keys, "--url", live_server.url, "--print-token")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    assert JWT_SHAPE.fullmatch(line), result.stdout


def test_a_printed_token_satisfies_every_rule_the_server_checks(live_server, keys):
    token = print_token(keys, live_server.url)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    claims = jwt.decode(
        token,
        (keys / "public.pem").read_text(),
        algorithms=["RS256"],
        issuer=client.ISSUER,
        audience=live_server.url,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    assert server.BASE_SCOPE in claims["scope"].split()
    assert claims["exp"] - claims["iat"] == client.EXPIRES_IN
    assert live_server.post(token).status_code == 200


def test_print_token_takes_scopes_and_expires_in(live_server, keys):
    token = print_token(keys, live_server.url, "--scopes", "read admin", "--expires-in", "60")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["scope"], claims["exp"] - claims["iat"]) == ("read admin", 60)


CURL_RUNS = re.findall(
    r"```bash\n(curl .*?)\n```\n\n```text\n(.*?)```", README + OTHER_CLIENTS, re.S
)
CURL_PRINTS = [(command, shown) for command, shown in CURL_RUNS if "WARNING" not in shown]


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@needs_curl
@pytest.mark.parametrize("command, shown", CURL_PRINTS, ids=range(len(CURL_PRINTS)))
def test_the_readme_curl_commands_print_what_it_shows(live_server, keys, command, shown):
    result = run(["bash", "-c", as_written(command, live_server, keys)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == at_port(shown, live_server.port).strip()


def test_the_readme_shows_curl_without_and_with_a_token():
    in_other_clients = [c for c, _ in CURL_RUNS if c in OTHER_CLIENTS]
    assert len(in_other_clients) == 2
    assert "Authorization" not in in_other_clients[0]
    assert "$(uv run client.py --print-token)" in in_other_clients[1]


def run_sdk_snippet(live_server, keys, tmp_path, token: str) -> subprocess.CompletedProcess:
    (snippet,) = re.findall(r"```python\n(.*?)```", OTHER_CLIENTS, re.S)
    script = tmp_path / "sdk_client.py"
    script.write_text(as_written(snippet, live_server, keys))
    return run([sys.executable, str(script)], env={**os.environ, "TOKEN": token})


def test_the_official_mcp_sdk_lists_and_calls_greet(live_server, keys, tmp_path):
    result = run_sdk_snippet(live_server, keys, tmp_path, print_token(keys, live_server.url))
    assert result.returncode == 0, result.stderr
    shown = OTHER_CLIENTS.split("uv run sdk_client.py`:\n\n```text\n")[1].split("```")[0]
    assert result.stdout == shown


def test_the_official_mcp_sdk_is_refused_with_a_bad_token(live_server, keys, tmp_path, mint):
    result = run_sdk_snippet(live_server, keys, tmp_path, mint(exp=int(time.time()) - 60))
    assert result.returncode != 0
    assert "greet:" not in result.stdout


def test_the_readme_client_configuration_connects(live_server, mint):
    (snippet,) = re.findall(r"```json\n(.*?)```", OTHER_CLIENTS, re.S)
    config = json.loads(at_port(snippet, live_server.port).replace("<token>", mint()))

    async def tool_names():
        async with Client(config) as mcp:
            return [tool.name for tool in await mcp.list_tools()]

    assert asyncio.run(tool_names()) == ["greet", "whoami"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fastmcp_run(spec: str, port: int, log_path) -> subprocess.Popen:
    fastmcp_cli = os.path.join(os.path.dirname(sys.executable), "fastmcp")
    with log_path.open("w") as log:
        return subprocess.Popen(
            [fastmcp_cli, "run", spec, "--transport", "http", "--no-banner"],
            env={**os.environ, "FASTMCP_PORT": str(port), "FASTMCP_ENABLE_RICH_LOGGING": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_fastmcp_run_on_the_bare_file_refuses_to_serve_without_auth(tmp_path):
    shutil.copy(ROOT / "server.py", tmp_path / "server.py")
    proc = fastmcp_run(str(tmp_path / "server.py"), free_port(), tmp_path / "log")
    assert proc.wait(timeout=60) == 1
    assert "no auth: start it with `uv run server.py`" in (tmp_path / "log").read_text()


@pytest.fixture(scope="module")
def node_22(tmp_path_factory) -> str:
    """A folder holding Node.js 22.19 or newer: the system's, else npm's `node@22` package."""
    node = shutil.which("node")
    if node:
        version = run([node, "--version"]).stdout
        if tuple(int(n) for n in version.strip().lstrip("v").split(".")[:2]) >= (22, 19):
            return os.path.dirname(node)
    if shutil.which("npm") is None:
        pytest.skip("no Node.js 22 and no npm to install it")
    folder = tmp_path_factory.mktemp("node22")
    try:
        installed = run(["npm", "install", "--silent", "--prefix", str(folder), "node@22"], 300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm could not install node@22 in 5 minutes: is the npm registry reachable?")
    if installed.returncode != 0:
        pytest.skip(f"npm could not install node@22: {installed.stderr.strip()[-300:]}")
    return str(folder / "node_modules" / ".bin")


def test_the_mcp_inspector_cli_lists_and_calls_greet_with_the_header(live_server, keys, node_22):
    (commands,) = re.findall(r"```bash\n(npx -y @modelcontextprotocol/.*?)```", OTHER_CLIENTS, re.S)
    env = {**os.environ, "PATH": f"{node_22}{os.pathsep}{os.environ['PATH']}"}
    try:
        result = run(["bash", "-c", as_written(commands, live_server, keys)], 300, env=env)
    except subprocess.TimeoutExpired:
        pytest.skip("npx and the Inspector took over 5 minutes: is the npm registry reachable?")
    if result.returncode != 0 and "npm error" in result.stderr:
        pytest.skip(f"npx could not fetch the Inspector: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"name": "greet"' in result.stdout, result.stdout
    assert '"text": "Hello, Inspector!"' in result.stdout, result.stdout


@needs_curl
def test_the_readme_log_line_for_an_expired_token_is_what_the_server_logs(live_server, keys):
    (command,) = [c for c, _ in CURL_RUNS if "--expires-in -60" in c]
    (log_line,) = re.findall(r"```text\n(WARNING: .*?)\n```", README)
    before = len(live_server.log())
    assert run(["bash", "-c", as_written(command, live_server, keys)]).returncode == 0
    deadline = time.monotonic() + 5
    while log_line not in live_server.log()[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log_line in live_server.log()[before:].splitlines(), live_server.log()[before:]
