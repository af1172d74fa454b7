"""Mint an RS256 JWT with PyJWT, then list and call the server's tools with it.

The client plays both parts here: the key holder that signs the token (with `private.pem`) and the
MCP client that sends it as `Authorization: Bearer <token>`. Start the server first, then:

    uv run client.py                         # against http://localhost:8000/mcp
    uv run client.py --url http://localhost:9000/mcp --private-key /path/to/private.pem
    uv run client.py --print-token           # just the token, e.g. for curl
"""

import argparse
import asyncio
import re
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastmcp import Client

HERE = Path(__file__).resolve().parent
ISSUER = "http://localhost:8000"  # must equal the server's ISSUER
URL = "http://localhost:8000/mcp"  # the token's audience is the URL it is sent to (RFC 8707)
SCOPES = "read write"
SUBJECT = "example-user"
PRIVATE_KEY_PATH = HERE / "private.pem"
EXPIRES_IN = 5 * 60  # seconds: a leaked token should be worth little
KEYGEN_HINT = (
    "make a key pair with `uv run -m fastmcp_auth keygen`, or with openssl: "
    "`openssl genpkey -algorithm RSA -out private.pem -pkeyopt rsa_keygen_bits:2048` and "
    "`openssl rsa -in private.pem -pubout -out public.pem`"
)


class ClientError(Exception):
    """A problem the user can fix; main() prints it as one line."""


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ClientError(f"private key {path} not found: {KEYGEN_HINT}") from None
    except OSError as e:
        raise ClientError(f"cannot read private key {path} ({e.strerror})") from None
    except (ValueError, TypeError) as e:
        raise ClientError(f"{path} is not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ClientError(f"{path} is not an RSA key; RS256 needs one: {KEYGEN_HINT}")
    return key


def http_url(text: str) -> str:
    """argparse type for --url: an http(s) URL with a host and a valid port."""
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 -- raises ValueError when out of range
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL like {URL}")
    return text


def mint_token(key: rsa.RSAPrivateKey, audience: str, scopes: str, expires_in: int) -> str:
    now = int(time.time())
    claims = {
        "sub": SUBJECT,
        "iss": ISSUER,
        "aud": audience,
        "iat": now,
        "exp": now + expires_in,
        "scope": scopes,  # OAuth style: one space-separated string
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="RS256")


class BearerToken(httpx2.Auth):
    """Sends the token, and keeps the server's answer when it is an error: the fastmcp Client's
    own error on a 401, 403 or 404 does not say which it was."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.refusal: httpx2.Response | None = None

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code >= 400:
            self.refusal = response


def explain(refusal: httpx2.Response, url: str) -> str:
    """One line from an HTTP error: what the server said, and what to check."""
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', refusal.headers.get("www-authenticate", "")))
    error, status = challenge.get("error"), refusal.status_code
    said = f"the server refused the token (HTTP {status}, {error})"
    if error == "insufficient_scope":
        return f'{said}: it needs scope "{challenge.get("scope")}"; mint it with --scopes'
    if error == "invalid_token":
        return (
            f"{said}: check that public.pem belongs to private.pem, iss is {ISSUER}, "
            f"aud is {url} (exactly the URL the server printed), and the clock is right"
        )
    return f"{url} answered HTTP {status}: check --url against the URL the server printed"


async def run(url: str, token: str) -> None:
    print("🚀 Starting FastMCP client with JWT authentication...")
    # Show only the token's first part (its header): a whole token is a password.
    print(f"🔐 Generated JWT token (self-signed):\n   {token.split('.')[0]}...")
    auth = BearerToken(token)
    client = Client(url, auth=auth)
    try:
        async with client:
            print(f"✅ Client connected: {client.is_connected()}")
            names = [tool.name for tool in await client.list_tools()]
            print(f"📋 Available tools: {names}")
            print("🎯 Testing greet tool...")
            result = await client.call_tool("greet", {"name": "FastMCP"})
            print(f"💬 Greet result: {result.data}")
            print(f"🪪 Whoami: {(await client.call_tool('whoami')).data}")
            if "server_config" in names:  # listed only for tokens with the admin scope
                config = await client.call_tool("server_config")
                print(f"🔒 Admin tool server_config: {config.data}")
    except Exception as e:
        if auth.refusal is not None:
            raise ClientError(explain(auth.refusal, url)) from None
        if isinstance(e.__cause__, httpx2.ConnectError):
            raise ClientError(
                f"Failed to connect to {url}: is the server running? (uv run server.py)"
            ) from None
        raise
    print(f"🔌 Client disconnected: {client.is_connected()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Call the JWT-protected MCP server.")
    parser.add_argument("--url", type=http_url, default=URL, help=f"MCP endpoint (default {URL})")
    parser.add_argument("--private-key", type=Path, default=PRIVATE_KEY_PATH, metavar="PATH")
    parser.add_argument("--scopes", default=SCOPES, help=f'space-separated (default "{SCOPES}")')
    parser.add_argument("--expires-in", type=int, default=EXPIRES_IN, metavar="SECONDS")
    parser.add_argument("--print-token", action="store_true", help="print a token and exit")
    args = parser.parse_args(argv)
    # A console that cannot show emoji gets "?" instead of a UnicodeEncodeError.
    sys.stdout.reconfigure(errors="replace")

    try:
        key = load_private_key(args.private_key)
        token = mint_token(key, args.url, args.scopes, args.expires_in)
        if args.print_token:
            print(token)
        else:
            asyncio.run(run(args.url, token))
    except ClientError as e:
        sys.exit(f"Error: {e}")


if __name__ == "__main__":
    main()
