"""The example works end to end: the real server over real HTTP, the real client, and the one
line the client prints for each way a call can fail."""

import asyncio
import json
import re

import jwt
import pytest
from fastmcp import Client

from conftest import ROOT, call, free_port, one_line_error, print_token, refusal, run_client
from fastmcp_auth import client, server
from fastmcp_auth.__main__ import write_keys

JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

ORIGINAL_LINES = [
    "🚀 Starting FastMCP client with JWT authentication...",
    "🔐 Generated JWT token (self-signed):",
    "   eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9...",
    "✅ Client connected: True",
    "📋 Available tools: ['greet', 'whoami', 'server_config']",
    "🎯 Testing greet tool...",
    "💬 Greet result: Hello, FastMCP!",
    '🔒 Admin tool server_config: HTTP 403, mint with --scopes "read admin" for it',
    "🪪 Whoami: {'subject': 'example-user', 'scopes': ['read', 'write']}",
    "🔌 Client disconnected: True",  # the original printed is_connected() here: False
]


def test_the_tools_list_shows_greet(live_server, mint):
    assert "greet" in call(live_server.url, mint())


def test_greet_answers_hello(live_server, mint):
    assert call(live_server.url, mint(), "greet", name="Ada") == "Hello, Ada!"


def test_client_py_prints_the_original_lines_and_shows_only_the_token_header(live_server, keys):
    result = run_client(keys, "--url", live_server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ORIGINAL_LINES


def test_client_py_with_the_admin_scope_calls_the_admin_tool(live_server, keys):
    result = run_client(keys, "--url", live_server.url, "--scopes", "read admin")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "📋 Available tools: ['greet', 'whoami', 'server_config']" in lines, result.stdout
    assert any(line.startswith("🔒 Admin tool server_config: {'issuer'") for line in lines)


def test_client_py_says_the_server_refused_its_token_and_where_to_look(live_server, tmp_path):
    write_keys(tmp_path / "private.pem", tmp_path / "public.pem")  # not the server's pair
    line = one_line_error(run_client(tmp_path, "--url", live_server.url))
    assert line == (
        f"Error: {live_server.url} answered HTTP 401: the server's log says why: key, iss, aud or "
        "clock"
    )


def test_client_py_says_which_scope_the_server_asks_for(live_server, keys):
    line = one_line_error(run_client(keys, "--url", live_server.url, "--scopes", "write"))
    assert line == f"Error: {live_server.url} answered HTTP 403: Required scope: read"


def test_client_py_with_a_wrong_path_says_to_check_the_url(live_server, keys):
    url = live_server.url.replace("/mcp", "/wrong")
    line = one_line_error(run_client(keys, "--url", url))
    assert line == f"Error: {url} answered HTTP 404: Not Found"


def test_client_py_without_a_server_says_it_could_not_connect(keys):
    url = f"http://localhost:{free_port()}/mcp"
    line = one_line_error(run_client(keys, "--url", url))
    assert line == f"Error: {url}: Client failed to connect: All connection attempts failed"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--url", "localhost:8000/mcp"], "Error: argument --url: invalid url value"),
        (["--expires-in", "soon"], "Error: argument --expires-in: invalid int value"),
        (["--client-id", "me"], "Error: --client-id needs --issuer: the one server"),
        (["--print-token", "--login"], "Error: --print-token mints a token here: not with"),
        (["--expires-in", "-10"], "Error: --expires-in takes seconds from now: a positive"),
    ],
)
def test_a_malformed_client_setting_is_one_line(args, says):
    assert refusal("client.py", *args).startswith(says)


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
    assert claims["exp"] - claims["iat"] == 5 * 60
    assert live_server.post(token).status_code == 200


def test_print_token_takes_scopes_and_expires_in(live_server, keys):
    token = print_token(keys, live_server.url, "--scopes", "read admin", "--expires-in", "60")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["scope"], claims["exp"] - claims["iat"]) == ("read admin", 60)


def test_the_readme_client_configuration_connects(live_server, mint):
    (snippet,) = re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "clients.md").read_text(), re.S)
    config = json.loads(
        snippet.replace("localhost:8000/", f"localhost:{live_server.port}/").replace(
            "<token>", mint()
        )
    )

    async def tool_names():
        async with Client(config) as mcp:
            return [tool.name for tool in await mcp.list_tools()]

    assert asyncio.run(tool_names()) == ["greet", "whoami", "server_config"]
