"""Call the MCP server's tools with a bearer token: minted with private.pem, or got by --client-id.

uv run client.py [--print-token]    # against http://localhost:8000/mcp; or a token only
"""

import asyncio
import logging
import os
import re
import sys
import time
from functools import partial
from pathlib import Path

import httpx2
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastmcp import Client
from fastmcp.client.auth import ClientCredentialsOAuthProvider
from fastmcp.client.transports import StreamableHttpTransport
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings

ISSUER, SUBJECT, SCOPES = "http://localhost:8000", "example-user", "read write"


class Settings(BaseSettings, env_prefix="MCP_", cli_kebab_case=True, cli_implicit_flags=True):
    url: str = Field("http://localhost:8000/mcp", pattern=r"^https?://[^/?#@\s]+(/\S*)?$")
    issuer: str = ""  # the token's `iss` (ISSUER: the server's default), or --client-id's server
    private_key: Path = Path(__file__).resolve().parent / "private.pem"
    scopes: str = ""  # minting: SCOPES; --client-id: what the server's challenge names
    expires_in: int = 5 * 60  # seconds: a leaked token should be worth little
    print_token: bool = False
    client_id: str = Field("", description="with its secret in env MCP_CLIENT_SECRET, never a flag")


def mint_token(s: Settings) -> str:  # the key holder's part: a short-lived RS256 token
    now = int(time.time())
    claims = {"sub": SUBJECT, "iss": s.issuer or ISSUER, "aud": s.url, "scope": s.scopes or SCOPES}
    claims |= {"iat": now, "exp": now + s.expires_in, "jti": os.urandom(16).hex()}
    try:
        key = load_pem_private_key(s.private_key.read_bytes(), password=None)
        return jwt.encode(claims, key, algorithm="RS256")
    except (OSError, ValueError, TypeError, jwt.InvalidKeyError) as e:
        sys.exit(f"Error: {s.private_key}: {e} (openssl genpkey -algorithm RSA -out private.pem)")


def explain(error: Exception, answer: httpx2.Response | None, url: str) -> str:  # in one line
    if answer is None or answer.status_code < 300 or answer.url != url:  # not the server's refusal
        return f"{url}: {error}"
    said = dict(re.findall(r'(\w+)="([^"]*)"', answer.headers.get("www-authenticate", "")))
    why = said.get("error_description", answer.headers.get("location", answer.reason_phrase))
    if said.get("error") == "invalid_token":  # FastMCP's description is generic, its log is not
        why = "the server's log says why: key, iss, aud or clock"
    return f"{url} answered HTTP {answer.status_code}: {why}"


async def run(s: Settings, answers: list) -> None:
    async def keep(answer: httpx2.Response) -> None:  # the Client's errors name no HTTP status
        answers[:] = [answer]

    print("🚀 Starting FastMCP client with JWT authentication...")
    if s.client_id:  # FastMCP's client credentials flow: 401, metadata, token, and again
        doc = s.url.removesuffix("/mcp") + "/.well-known/oauth-protected-resource/mcp"  # RFC 9728
        issuer = s.issuer or httpx2.get(doc).raise_for_status().json()["authorization_servers"][0]
        asked = {"client_secret": os.environ["MCP_CLIENT_SECRET"], "scopes": s.scopes or None}
        auth = ClientCredentialsOAuthProvider(client_id=s.client_id, issuer=issuer, **asked)
        print(f"🔐 Token from the authorization server {issuer}, as {s.client_id}")
    else:  # only the token's header: a whole token is a password while it lives
        auth = mint_token(s)
        print(f"🔐 Generated JWT token (self-signed):\n   {auth.split('.')[0]}...")
    http = partial(httpx2.AsyncClient, event_hooks={"response": [keep]})
    transport = StreamableHttpTransport(s.url, auth=auth, httpx_client_factory=http)
    async with Client(transport, timeout=300) as client:  # seconds: a tool call may take long
        print(f"✅ Client connected: {client.is_connected()}")
        print(f"📋 Available tools: {(names := [tool.name for tool in await client.list_tools()])}")
        print("🎯 Testing greet tool...")
        print(f"💬 Greet result: {(await client.call_tool('greet', {'name': 'FastMCP'})).data}")
        print(f"🪪 Whoami: {(await client.call_tool('whoami')).data}")
        if "server_config" in names:  # listed only to tokens with the admin scope
            print(f"🔒 Admin tool server_config: {(await client.call_tool('server_config')).data}")
    print(f"🔌 Client disconnected: {client.is_connected()}")


if __name__ == "__main__":
    try:
        config = Settings(_cli_parse_args=True)
    except ValidationError as e:
        sys.exit("Error: {loc[0]} {input!r}: {msg}".format_map(e.errors()[0]))
    if config.client_id and (config.print_token or "MCP_CLIENT_SECRET" not in os.environ):
        sys.exit("Error: --client-id needs env MCP_CLIENT_SECRET, and mints no --print-token")
    logging.getLogger("mcp").setLevel(logging.CRITICAL)  # it logs each failure; we say it once
    answers = []  # the last HTTP answer, kept by run()
    try:
        if config.print_token:  # the token alone: for curl, the Inspector, an editor's config
            print(mint_token(config))
        else:
            asyncio.run(run(config, answers))
    except Exception as e:  # whatever stopped it, the user gets one line, not a traceback
        sys.exit(f"Error: {explain(e, answers[-1] if answers else None, config.url)}")
