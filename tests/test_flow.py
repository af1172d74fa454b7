"""The example works end to end: the real server over real HTTP, the real client."""

from conftest import call, run_client
from fastmcp_auth.__main__ import write_keys

ORIGINAL_LINES = [
    "✅ Client connected: True",
    "📋 Available tools: ['greet', 'whoami']",
    "💬 Greet result: Hello, FastMCP!",
    "🔌 Client disconnected: False",
]


def test_the_tools_list_shows_greet(live_server, mint):
    assert "greet" in call(live_server.url, mint())


def test_greet_answers_hello(live_server, mint):
    assert call(live_server.url, mint(), "greet", name="Ada") == "Hello, Ada!"


def test_client_py_prints_the_original_lines(live_server, keys):
    result = run_client(keys, "--url", live_server.url)
    assert result.returncode == 0, result.stderr
    for line in ORIGINAL_LINES:
        assert line in result.stdout.splitlines(), result.stdout


def test_client_py_shows_only_the_token_header_never_the_whole_token(live_server, keys):
    result = run_client(keys, "--url", live_server.url)
    shown = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("eyJ")]
    assert shown == ["eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9..."], result.stdout


def test_client_py_runs_where_stdout_cannot_encode_emoji(live_server, keys):
    result = run_client(keys, "--url", live_server.url, encoding="ascii")
    assert result.returncode == 0, result.stderr
    assert "? Greet result: Hello, FastMCP!" in result.stdout.splitlines(), result.stdout


def test_client_py_says_when_the_server_refuses_its_token(live_server, tmp_path):
    write_keys(tmp_path / "private.pem", tmp_path / "public.pem")  # not the server's pair
    result = run_client(tmp_path, "--url", live_server.url)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: the server refused the token (HTTP 401, invalid_token)"), line
    assert "its log says why: the key, iss, aud (this token's: http" in line, line


def test_client_py_says_which_scope_the_server_asks_for(live_server, keys):
    result = run_client(keys, "--url", live_server.url, "--scopes", "write")
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == (
        "Error: the server refused the token (HTTP 403, insufficient_scope): "
        'it needs scope "read"; ask for it with --scopes'
    ), result.stderr


def test_client_py_with_the_admin_scope_calls_the_admin_tool(live_server, keys):
    result = run_client(keys, "--url", live_server.url, "--scopes", "read admin")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "📋 Available tools: ['greet', 'whoami', 'server_config']" in lines, result.stdout
    assert any(line.startswith("🔒 Admin tool server_config: {'issuer'") for line in lines)


def test_client_py_with_a_wrong_path_says_to_check_the_url(live_server, keys):
    url = live_server.url.replace("/mcp", "/wrong")
    result = run_client(keys, "--url", url)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (
        f"Error: {url} answered HTTP 404: check --url against the URL the server printed"
    )
