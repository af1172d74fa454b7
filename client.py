"""Call the MCP server's tools with a bearer token, got one of three ways:

uv run client.py                # minted here, signed with private.pem (RS256)
uv run client.py --login        # a user logs in: authorization code + PKCE, in the browser
uv run client.py --client-id ID --issuer AS  # the client's own, signed with private.pem
uv run client.py --print-token  # a minted token alone, for curl or an editor
"""

import argparse
import asyncio
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ISSUER, SUBJECT, SCOPES = "http://localhost:8000", "example-user", "read write"
ADMIN_TOOL = "server_config"  # needs the admin scope: the server answers 403 without it
MAKE_KEYS = "openssl genpkey -algorithm RSA -out private.pem, and public.pem: README step 1"


class Arguments(argparse.ArgumentParser):
    """argparse, not pydantic-settings: --print-token runs once per connection an editor makes,
    so it imports little (docs/performance.md times it)."""

    def error(self, message: str):  # one line, without argparse's usage line
        sys.exit(f"Error: {message}")


def url(value: str) -> str:
    if not re.fullmatch(r"https?://[^/?#@\s]+(/\S*)?", value):
        raise ValueError(value)  # argparse: "argument --url: invalid url value: ..."
    return value


def settings() -> argparse.Namespace:
    parser = Arguments(description="Call the MCP server's tools. A secret: env MCP_CLIENT_SECRET.")
    parser.add_argument("--url", type=url, default="http://localhost:8000/mcp")
    parser.add_argument("--issuer", default="", help="the minted token's iss; or --client-id's")
    parser.add_argument("--private-key", type=Path, default=Path(__file__).parent / "private.pem")
    parser.add_argument("--scopes", default="", help=f"minting: {SCOPES!r}; else the server's")
    parser.add_argument("--expires-in", type=int, default=5 * 60, help="seconds: leaks age fast")
    parser.add_argument("--print-token", action="store_true", help="the minted token alone")
    parser.add_argument("--login", action="store_true", help="a user logs in, in the browser")
    parser.add_argument("--client-id", default="", help="with --issuer: the client's own token")
    return parser.parse_args()


def signing_key(s: argparse.Namespace):
    try:
        return load_pem_private_key(s.private_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        sys.exit(f"Error: {s.private_key}: {e} ({MAKE_KEYS})")


def mint_token(s: argparse.Namespace) -> str:  # the key holder's part: a short-lived RS256 token
    now = int(time.time())
    claims = {"sub": SUBJECT, "iss": s.issuer or ISSUER, "aud": s.url, "scope": s.scopes or SCOPES}
    claims |= {"iat": now, "exp": now + s.expires_in, "jti": os.urandom(16).hex()}
    try:
        return jwt.encode(claims, signing_key(s), algorithm="RS256")
    except jwt.InvalidKeyError as e:
        sys.exit(f"Error: {s.private_key}: {e} ({MAKE_KEYS})")


def token_source(s: argparse.Namespace):
    """What `Client(auth=...)` takes: a minted token, or a FastMCP provider that gets one."""
    from fastmcp.client import auth  # here: --print-token must not wait for FastMCP's import

    scopes = s.scopes or None  # None: what the server's challenge names
    secret = os.environ.get("MCP_CLIENT_SECRET")
    if s.login:  # no secret to leak: the authorization server may come from the server's metadata
        pinned = {"client_id": s.client_id, "client_secret": secret, "issuer": s.issuer or None}
        return auth.OAuth(scopes=scopes, **(pinned if s.client_id else {}))
    if s.client_id and secret:  # credentials go only to --issuer, whatever the server names
        return auth.ClientCredentialsOAuthProvider(
            client_id=s.client_id, client_secret=secret, scopes=scopes, issuer=s.issuer
        )
    if s.client_id:  # RFC 7523: no shared secret; the key's own algorithm (RS256, ES256)
        key = signing_key(s)
        algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        pem = s.private_key.read_text()
        signed = auth.SignedJWTParameters(
            issuer=s.client_id, subject=s.client_id, signing_key=pem, signing_algorithm=algorithm
        )
        assertion = signed.create_assertion_provider()  # iss, sub, aud: the issuer, exp, jti
        return auth.PrivateKeyJWTOAuthProvider(
            client_id=s.client_id, assertion_provider=assertion, scopes=scopes, issuer=s.issuer
        )
    return mint_token(s)


def shown(text: object) -> str:
    """Server text for the terminal: an escape code or a new line is shown, never obeyed."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


async def server_log(message) -> None:  # the server's log notifications, escaped like all it says
    print(f"📝 {shown(message.level)} {shown(message.logger or '')}: {shown(message.data)}")


class Http:
    """FastMCP's HTTP traffic, watched: FastMCP's errors name no HTTP status, so the last answer is
    kept; and credentials go to --issuer only, whatever authorization server the MCP server names
    (FastMCP would first ask the named one for its metadata)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer  # empty: any (a user's login holds no secret)
        self.last = None

    async def answered(self, answer) -> None:  # an httpx response hook
        from mcp.client.auth.utils import issuers_match  # here: --print-token must not wait

        self.last = answer
        stream = "event-stream" in answer.headers.get("content-type", "")
        if not self.issuer or answer.request.method != "GET" or stream:
            return  # not RFC 9728 metadata, which may come at any path, with any content type
        await answer.aread()  # its body, for .json(): before any authorization server is asked
        try:
            document = answer.json()
        except ValueError:  # not JSON: not metadata the SDK would take either
            return
        named = document.get("authorization_servers") if isinstance(document, dict) else None
        if named is not None and not any(issuers_match(self.issuer, n) for n in named):
            raise ValueError(f"it names {named}, not --issuer {self.issuer}: nothing sent")

    def client(self, **kwargs):  # the transport's httpx_client_factory
        import httpx2  # here: --print-token must not wait for it

        return httpx2.AsyncClient(**kwargs, event_hooks={"response": [self.answered]})

    def said(self, field: str) -> str | None:  # a field of the last answer's WWW-Authenticate
        from mcp.client.auth.utils import extract_field_from_www_auth

        return extract_field_from_www_auth(self.last, field) if self.last else None


def explain(error: Exception, answers: Http, url: str) -> str:
    """The one line a failure is worth: the server's own words if it refused."""
    answer = answers.last
    if answer is None or answer.status_code < 300 or answer.url != url:  # not the MCP server
        return f"{url}: {error}"
    why = (
        answers.said("error_description") or answer.headers.get("location") or answer.reason_phrase
    )
    if answers.said("error") == "invalid_token":  # FastMCP's description is generic, its log not
        why = "the server's log says why: key, iss, aud or clock"
    return f"{url} answered HTTP {answer.status_code}: {why}"


async def run(s: argparse.Namespace, answers: Http) -> None:
    from fastmcp import Client  # here: --print-token must not wait for FastMCP's import
    from fastmcp.client.transports import StreamableHttpTransport

    logging.getLogger("fastmcp").setLevel(logging.WARNING)  # not the login URL: $BROWSER opens it

    print("🚀 Starting FastMCP client with JWT authentication...")
    source = token_source(s)
    if isinstance(source, str):  # only the token's header: a whole token is a password
        print(f"🔐 Generated JWT token (self-signed):\n   {source.split('.')[0]}...")
    elif s.client_id:
        print(f"🔐 Token from the authorization server {s.issuer}, as {s.client_id}")
    else:
        print("🔐 Token from the authorization server the MCP server names, for a user who logs in")
    http = StreamableHttpTransport(s.url, auth=source, httpx_client_factory=answers.client)
    async with Client(http, timeout=300, log_handler=server_log) as client:  # a call may be long
        print(f"✅ Client connected: {client.is_connected()}")
        tools = [tool.name for tool in await client.list_tools()]
        print(f"📋 Available tools: {shown(tools)}")
        print("🎯 Testing greet tool...")
        greeting = await client.call_tool("greet", {"name": "FastMCP"})
        print(f"💬 Greet result: {shown(greeting.data)}")
        try:  # an OAuth provider steps up on the server's 403 by itself; a minted token cannot
            admin = await client.call_tool(ADMIN_TOOL)
            print(f"🔒 Admin tool {ADMIN_TOOL}: {shown(admin.data)}")
        except Exception:
            if answers.said("error") != "insufficient_scope" or not isinstance(source, str):
                raise
            scope = shown(answers.said("scope"))
            print(f'🔒 Admin tool {ADMIN_TOOL}: HTTP 403, mint with --scopes "{scope}" for it')
        whoami = await client.call_tool("whoami")  # after any step-up: its scopes show it
        print(f"🪪 Whoami: {shown(whoami.data)}")
    print(f"🔌 Client disconnected: {not client.is_connected()}")


if __name__ == "__main__":
    config = settings()
    if config.client_id and not config.issuer:
        sys.exit("Error: --client-id needs --issuer: the one server its credentials may go to")
    if config.print_token and (config.client_id or config.login):
        sys.exit("Error: --print-token mints a token here: not with --client-id or --login")
    if config.expires_in <= 0:
        sys.exit("Error: --expires-in takes seconds from now: a positive number")
    logging.getLogger("mcp").setLevel(logging.CRITICAL)  # it logs each failure; we say it once
    warnings.filterwarnings("ignore", "Using in-memory token storage")  # this run's only: fine
    answers = Http(config.issuer if config.client_id or config.login else "")  # minting: no pin
    try:
        if config.print_token:  # the token alone: for curl, the Inspector, an editor's config
            print(mint_token(config))
        else:
            asyncio.run(run(config, answers))
    except Exception as e:  # whatever stopped it, the user gets one line, not a traceback
        sys.exit(f"Error: {shown(explain(e, answers, config.url))}")
