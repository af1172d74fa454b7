"""The two ways to a token that hold no shared secret, against the real authorization server
(oidc-provider): a user's login (authorization code + PKCE) in a real headless Chromium, with
the step-up from `read` to `read admin`, and a client that proves itself with its own key
(private_key_jwt, RFC 7523). Needs `npm ci --prefix authserver` and Debian's chromium."""

import sys

import pytest

from authserver import browser, installed, make_keys, start
from conftest import ROOT, client_py, free_port, one_line_error, p256_key, running
from fastmcp_auth.__main__ import write_keys

pytestmark = pytest.mark.real

KEY_CLIENT = "key-client"  # registered at the authorization server by its public key


@pytest.fixture(scope="module")
def provider(tmp_path_factory, keys):
    """oidc-provider with --login and the key client, and server.py trusting its JWKS."""
    folder = tmp_path_factory.mktemp("login")
    node_dir = installed()
    make_keys(folder / "as.jwks.json", 1)
    issuer, port = f"http://127.0.0.1:{free_port()}", free_port()
    url = f"http://localhost:{port}/mcp"
    flags = ("--login", "--client-key", str(keys / "public.pem"))
    log = folder / "as.log"
    with start(
        node_dir, issuer, [url], KEY_CLIENT, None, folder / "as.jwks.json", log, flags=flags
    ):
        args = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--issuer", issuer]
        with running([*args, "--jwks-uri", f"{issuer}/jwks"], folder / "server.log") as srv:
            srv.issuer, srv.as_log, srv.folder = issuer, log, folder
            yield srv


def client_at(provider, *args: str, browser_log=None):
    """client.py against the provider's MCP server, with browser.mjs as the user's browser."""
    env = {"BROWSER": browser()}
    if browser_log is not None:
        env["BROWSER_LOG"] = str(browser_log)
    return client_py("--url", provider.url, *args, env=env)


@pytest.fixture(scope="module")
def logged_in(provider):
    """One `client.py --login` run: (its result, the browser's log, the server's token log)."""
    before = len(provider.as_log.read_text())
    browser_log = provider.folder / "browser.log"
    result = client_at(provider, "--login", browser_log=browser_log)
    issued = provider.as_log.read_text()[before:]
    return result, browser_log.read_text() if browser_log.exists() else "", issued


def test_a_user_logs_in_in_a_real_browser_and_greets(logged_in):
    result, pages, issued = logged_in
    assert result.returncode == 0, result.stdout + result.stderr + pages
    lines = result.stdout.splitlines()
    assert "💬 Greet result: Hello, FastMCP!" in lines, result.stdout
    assert "🪪 Whoami: {'subject': 'alice', 'scopes': ['read', 'admin']}" in lines, result.stdout
    assert "login page" in pages and "consent page" in pages, pages
    assert "client registered: " in issued, issued  # dynamic registration (RFC 7591)


def test_the_403_on_the_admin_tool_makes_the_login_step_up_to_read_admin(logged_in, provider):
    result, pages, issued = logged_in
    tokens = [line for line in issued.splitlines() if line.startswith('token issued: user "alice"')]
    assert [t.split("scope ")[-1] for t in tokens] == ['"read"', '"read admin"'], issued
    assert pages.count("consent page") == 2, pages  # the user consents to admin, too
    admin = f"🔒 Admin tool server_config: {{'issuer': '{provider.issuer}', 'audience': "
    assert any(line.startswith(admin) for line in result.stdout.splitlines()), result.stdout


def test_a_pre_registered_public_client_logs_in_too(provider):
    args = ["--login", "--client-id", "demo-login", "--issuer", provider.issuer]
    result = client_at(provider, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "🪪 Whoami: {'subject': 'alice', 'scopes': ['read', 'admin']}" in lines, lines


def test_a_client_proves_itself_with_its_key_and_greets(provider, keys):
    args = ["--client-id", KEY_CLIENT, "--issuer", provider.issuer]
    result = client_at(provider, *args, "--private-key", str(keys / "private.pem"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"🔐 Token from the authorization server {provider.issuer}, as {KEY_CLIENT}" in lines
    # Its first token has the challenge's scope, read; the 403 on the admin tool, read admin.
    assert f"🪪 Whoami: {{'subject': '{KEY_CLIENT}', 'scopes': ['read', 'admin']}}" in lines


def test_an_assertion_signed_by_another_key_is_refused_in_one_line(provider, tmp_path):
    write_keys(tmp_path / "private.pem", tmp_path / "public.pem")  # not the registered key
    before = len(provider.as_log.read_text())
    args = ["--client-id", KEY_CLIENT, "--issuer", provider.issuer]
    line = one_line_error(
        client_at(provider, *args, "--private-key", str(tmp_path / "private.pem"))
    )
    assert '"error":"invalid_client"' in line, line
    assert "signature verification failed" in provider.as_log.read_text()[before:]


def test_a_p256_key_signs_its_assertion_with_es256_and_greets(tmp_path):
    p256_key(tmp_path)
    make_keys(tmp_path / "as.jwks.json", 1)
    issuer, port = f"http://127.0.0.1:{free_port()}", free_port()
    url = f"http://localhost:{port}/mcp"
    flags = ("--client-key", str(tmp_path / "ec.pub.pem"))
    keys = tmp_path / "as.jwks.json"
    with start(installed(), issuer, [url], "ec", None, keys, tmp_path / "as.log", flags=flags):
        args = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--issuer", issuer]
        with running([*args, "--jwks-uri", f"{issuer}/jwks"], tmp_path / "server.log") as srv:
            args = ["--client-id", "ec", "--issuer", issuer]
            result = client_py("--url", srv.url, *args, "--private-key", str(tmp_path / "ec.pem"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "💬 Greet result: Hello, FastMCP!" in result.stdout.splitlines(), result.stdout
