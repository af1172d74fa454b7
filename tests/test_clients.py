"""Works with every client: --print-token, curl, the official MCP SDK, a client configuration and
the MCP Inspector. The snippets of the README and docs/clients.md are run as written, against
the real server (its port and the test keys put in place of the defaults). Real components:
curl, Node.js and npx (the Inspector comes from the npm registry)."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, print_token, run, unavailable

pytestmark = pytest.mark.real

README = (ROOT / "README.md").read_text()
OTHER_CLIENTS = (ROOT / "docs" / "clients.md").read_text()
JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def as_written(snippet: str, live_server, keys) -> str:
    """A README snippet aimed at the test server: its port, and client.py with the test key."""
    client_py = f"{sys.executable} {ROOT / 'client.py'} --private-key {keys / 'private.pem'}"
    snippet = snippet.replace("uv run client.py --print-token", f"{client_py} --print-token")
    snippet = snippet.replace("--print-token", f"--print-token --url {live_server.url}")
    return at_port(snippet, live_server.port)


def at_port(text: str, port: int) -> str:
    """`text` with the server's URLs on `port` (the issuer, `http://localhost:8000`, stays)."""
    return text.replace("localhost:8000/", f"localhost:{port}/")


CURL_RUNS = re.findall(
    r"```bash\n(curl .*?)\n```\n\n```text\n(.*?)```", README + OTHER_CLIENTS, re.S
)
CURL_PRINTS = [(command, shown) for command, shown in CURL_RUNS if "WARNING" not in shown]


@pytest.fixture
def curl():
    if shutil.which("curl") is None:
        unavailable("curl is not installed", "install the curl package")


@pytest.mark.usefixtures("curl")
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


@pytest.fixture(scope="module")
def node_22(tmp_path_factory) -> str:
    """A folder holding Node.js 22.19 or newer: the system's, else npm's `node@22` package."""
    node = shutil.which("node")
    if node:
        version = run([node, "--version"]).stdout
        if tuple(int(n) for n in version.strip().lstrip("v").split(".")[:2]) >= (22, 19):
            return os.path.dirname(node)
    if shutil.which("npm") is None:
        unavailable("the MCP Inspector needs Node.js 22.19 or newer, or npm", "install Node.js")
    folder = tmp_path_factory.mktemp("node22")
    try:
        installed = run(["npm", "install", "--silent", "--prefix", str(folder), "node@22"], 300)
    except subprocess.TimeoutExpired:
        unavailable("npm could not install node@22 in 5 minutes", "reach the npm registry")
    if installed.returncode != 0:
        unavailable(f"npm could not install node@22: {installed.stderr[-300:]}", "npm's registry")
    return str(folder / "node_modules" / ".bin")


def test_the_mcp_inspector_cli_lists_and_calls_greet_with_the_header(live_server, keys, node_22):
    (commands,) = re.findall(r"```bash\n(npx -y @modelcontextprotocol/.*?)```", OTHER_CLIENTS, re.S)
    env = {**os.environ, "PATH": f"{node_22}{os.pathsep}{os.environ['PATH']}"}
    try:
        result = run(["bash", "-c", as_written(commands, live_server, keys)], 300, env=env)
    except subprocess.TimeoutExpired:
        unavailable("npx and the Inspector took over 5 minutes", "reach the npm registry")
    if result.returncode != 0 and "npm error" in result.stderr:
        unavailable(f"npx could not fetch the Inspector: {result.stderr[-300:]}", "npm registry")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"name": "greet"' in result.stdout, result.stdout
    assert '"text": "Hello, Inspector!"' in result.stdout, result.stdout


@pytest.mark.usefixtures("curl")
def test_the_readme_log_line_for_a_token_of_another_server_is_what_the_server_logs(
    live_server, keys
):
    (command,) = [c for c, _ in CURL_RUNS if "--url http://localhost:9999/mcp" in c]
    (log_line,) = re.findall(r"```text\n(WARNING: .*?)\n```", README)
    command = command.replace("--print-token --url http://localhost:9999/mcp", "--print-token")
    command = as_written(command, live_server, keys).replace(
        f"--print-token --url {live_server.url}", "--print-token --url http://localhost:9999/mcp"
    )
    before = len(live_server.log())
    assert run(["bash", "-c", command]).returncode == 0
    expected = at_port(log_line, live_server.port)
    new = live_server.log_once_it_says("audience mismatch")[before:]
    assert expected in new.splitlines(), new
