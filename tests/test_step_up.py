"""Scope step-up (MCP authorization, 2025-11-25 and later): a tool that needs more than `read` is
listed to every token, and a call without its scopes gets HTTP 403 `insufficient_scope` naming
them, before any tool code runs, on every protocol version the server accepts."""

import asyncio
import json
import socket
from types import SimpleNamespace

import httpx
import pytest
from fastmcp import Client

from conftest import MCP_HEADERS, call
from fastmcp_auth import server

LEGACY = "2025-11-25"  # a handshake client's version: only the body names the tool
MODERN = "2026-07-28"  # fastmcp 4's Client: Mcp-Method and Mcp-Name headers repeat the body


def tools_call(version: str, name: str, arguments: dict | None = None, **headers) -> tuple:
    """A JSON-RPC `tools/call` as the client of `version` sends it: (body, headers)."""
    params = {"name": name, "arguments": arguments or {}}
    sent = {**MCP_HEADERS, "MCP-Protocol-Version": version}
    if version == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        sent |= {"Mcp-Method": "tools/call", "Mcp-Name": name}
    sent |= headers
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}, sent


def post(server, token: str | None, body: dict, headers: dict) -> httpx.Response:
    if token is not None:
        headers = {**headers, "Authorization": f"Bearer {token}"}
    return httpx.post(server.url, json=body, headers=headers, timeout=10)


def step_up_challenge(server) -> str:
    metadata = server.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    return (
        'Bearer error="insufficient_scope", error_description="Required scope: admin", '
        f'scope="read admin", resource_metadata="{metadata}"'
    )


def test_the_admin_tool_is_listed_to_a_read_token_and_names_its_scope(live_server, mint):
    async def listed():
        async with Client(live_server.url, auth=mint(scope="read")) as mcp:
            return {tool.name: tool.description for tool in await mcp.list_tools()}

    tools = asyncio.run(listed())
    assert list(tools) == ["greet", "whoami", "server_config"]
    assert "admin" in tools["server_config"], tools


@pytest.mark.parametrize("version", [LEGACY, MODERN])
def test_a_read_token_calling_the_admin_tool_gets_403_naming_the_scopes(live_server, mint, version):
    response = post(live_server, mint(scope="read"), *tools_call(version, "server_config"))
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"] == step_up_challenge(live_server), response.text
    assert response.json()["error"] == "insufficient_scope", response.text


@pytest.mark.parametrize("version", [LEGACY, MODERN])
def test_an_admin_token_calls_the_admin_tool(live_server, mint, version):
    response = post(live_server, mint(scope="read admin"), *tools_call(version, "server_config"))
    assert response.status_code == 200, response.text
    assert '"audience"' in response.text, response.text


@pytest.mark.parametrize("version", [LEGACY, MODERN])
def test_a_read_token_still_calls_the_tools_that_need_only_read(live_server, mint, version):
    body, headers = tools_call(version, "greet", {"name": "Ada"})
    response = post(live_server, mint(scope="read"), body, headers)
    assert response.status_code == 200, response.text
    assert "Hello, Ada!" in response.text, response.text


def test_headers_naming_another_tool_do_not_hide_the_admin_call(live_server, mint):
    # The body decides: a proxy routing on Mcp-Name would see greet, the server runs the body.
    for version in (LEGACY, MODERN):
        body, headers = tools_call(version, "server_config", **{"Mcp-Name": "greet"})
        response = post(live_server, mint(scope="read"), body, headers)
        assert response.status_code == 403, response.text


def test_a_2026_request_whose_headers_and_body_disagree_is_refused(live_server, mint):
    body, headers = tools_call(MODERN, "greet", {"name": "Ada"}, **{"Mcp-Name": "server_config"})
    response = post(live_server, mint(scope="read admin"), body, headers)
    assert response.status_code == 400, response.text
    assert "mcp-name header does not match" in response.text, response.text


def test_a_body_sent_in_pieces_is_read_whole_before_the_check(live_server, mint):
    body, headers = tools_call(LEGACY, "server_config")
    raw = httpx.Request("POST", live_server.url, json=body).content

    def pieces():  # chunked: the first piece alone is no JSON at all
        yield raw[:9]
        yield raw[9:]

    sent = {**headers, "Authorization": f"Bearer {mint(scope='read')}"}
    response = httpx.post(live_server.url, content=pieces(), headers=sent, timeout=10)
    assert response.status_code == 403, response.text


def test_a_body_over_the_sdks_limit_is_refused_unread_by_the_check_itself():
    """In process: StepUp alone, fed a 5 MiB body in pieces with no Content-Length, answers 413
    and never hands it on (the SDK behind it has the same limit, so over HTTP both would)."""
    handed_on, sent = [], []
    pieces = [{"type": "http.request", "body": b"[" * 65536, "more_body": True}] * 80

    async def app(scope, receive, send):
        handed_on.append(scope)

    async def receive():
        return pieces.pop() if pieces else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    signed_in = SimpleNamespace(is_authenticated=True)
    scope = {"type": "http", "method": "POST", "headers": [], "user": signed_in}
    asyncio.run(server.StepUp(app)(scope, receive, send))
    assert handed_on == [] and sent[0]["status"] == 413, sent


def test_without_a_token_the_admin_call_gets_the_plain_401(live_server):
    response = post(live_server, None, *tools_call(LEGACY, "server_config"))
    assert response.status_code == 401, response.text
    metadata = live_server.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    expected = f'Bearer scope="read", resource_metadata="{metadata}"'
    assert response.headers["www-authenticate"] == expected, response.text


def test_without_a_token_the_body_is_not_even_read(live_server):
    """A 401 before the body: no one without a token makes the server buffer or parse 4 MiB."""
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: localhost:{live_server.port}\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
        "Content-Length: 4000000\r\n\r\n[[],[],"  # and the rest never comes
    )
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 401 "), answer


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: b"\xef\xbb\xbf" + text.encode(),  # a UTF-8 byte order mark
        lambda text: text.encode("utf-16"),
        lambda text: text.replace('"arguments"', '"x": "\\ud800", "arguments"').encode(),
        lambda text: text.replace(
            '"arguments"', f'"x": {"[" * 300}{"]" * 300}, "arguments"'
        ).encode(),
    ],
    ids=["a BOM", "UTF-16", "a lone surrogate", "300 deep"],
)
def test_a_body_this_check_cannot_read_needs_every_tools_scopes(live_server, mint, encode):
    """The 2026-07-28 path reads bodies with json.loads, which takes these; the check, with the
    SDK's other parser, does not: it fails closed."""
    body, headers = tools_call(MODERN, "server_config")
    sent = {**headers, "Content-Type": "application/json"}
    sent["Authorization"] = f"Bearer {mint(scope='read')}"
    content = encode(json.dumps(body))
    response = httpx.post(live_server.url, content=content, headers=sent, timeout=10)
    assert response.status_code == 403, response.text
    admin = {**sent, "Authorization": f"Bearer {mint(scope='read admin')}"}
    served = httpx.post(live_server.url, content=content, headers=admin, timeout=10)
    assert served.status_code == 200 and '"audience"' in served.text, served.text


def test_fastmcps_client_with_a_read_token_is_refused(live_server, mint):
    with pytest.raises(Exception, match="error response"):
        call(live_server.url, mint(scope="read"), "server_config")
