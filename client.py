"""Get a token, then list and call the MCP server's tools with it as `Authorization: Bearer`.

By default the client mints the token itself with PyJWT and `private.pem` (the key holder's part,
played here so the demo needs nothing else). With --client-id it asks an authorization server
instead, found through the server's RFC 9728 metadata (the secret in MCP_CLIENT_SECRET).

    uv run client.py                  # against http://localhost:8000/mcp
    uv run client.py --print-token    # only a token, e.g. for curl
"""

import argparse
import asyncio
import logging
import os
import re
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

URL = "http://localhost:8000/mcp"  # the token's audience is the URL it is sent to (RFC 8707)
ISSUER = "http://localhost:8000"  # must equal the server's --issuer
SCOPES = "read write"
SUBJECT = "example-user"
PRIVATE_KEY = Path(__file__).resolve().parent / "private.pem"
EXPIRES_IN = 5 * 60  # seconds: a leaked token should be worth little
OPENSSL_HINT = (  # for a reader who copied this file alone, too
    "make it with `openssl genpkey -algorithm RSA -out private.pem -pkeyopt rsa_keygen_bits:2048"
    " && openssl rsa -in private.pem -pubout -out public.pem` (or, in the fastmcp-auth "
    "repository, `uv run -m fastmcp_auth keygen`)"
)


class ClientError(Exception):
    """A problem the user can fix; main() prints it as one line."""


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ClientError(f"private key {path} not found: {OPENSSL_HINT}") from None
    except OSError as e:
        raise ClientError(f"cannot read private key {path} ({e.strerror})") from None
    except (ValueError, TypeError) as e:
        raise ClientError(f"{path} is not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ClientError(f"{path} is not an RSA key, which RS256 needs: {OPENSSL_HINT}")
    return key


def mint_token(key, audience: str, scopes: str, expires_in: int, issuer: str = ISSUER) -> str:
    now = int(time.time())
    claims = {
        "sub": SUBJECT,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + expires_in,
        "scope": scopes,  # OAuth style: one space-separated string
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="RS256")


def explain(refusal, url: str) -> str:
    """One line from an HTTP error: what the server said, and what to check."""
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', refusal.headers.get("www-authenticate", "")))
    error, status = challenge.get("error"), refusal.status_code
    said = f"the server refused the token (HTTP {status}, {error})"
    if error == "insufficient_scope":
        return f'{said}: it needs scope "{challenge.get("scope")}"; ask for it with --scopes'
    if error == "invalid_token":  # why is in the server's log, for the operator alone
        return f"{said}: its log says why: the key, iss, aud (this token's: {url}), the clock"
    if 300 <= status < 400:  # e.g. a proxy's http:// port: the token must not travel in clear
        return f"{url} redirects to {refusal.headers.get('location')}: use that as --url"
    return f"{url} answered HTTP {status}: check --url against the URL the server printed"


async def run(url: str, auth, label: str) -> None:
    import httpx2  # imported here, so that --print-token costs only what PyJWT does
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport
    from mcp.shared.exceptions import MCPError

    # The MCP SDK logs each failure on its own; main() says it once, in one line.
    logging.getLogger("mcp").setLevel(logging.CRITICAL)
    print("🚀 Starting FastMCP client with JWT authentication...")
    print(f"🔐 {label}")
    refusals = []  # the fastmcp Client's own error does not say which HTTP status it got

    async def keep_refusals(response) -> None:
        if response.status_code >= 300:
            refusals.append(response)

    def http_client(**kwargs):  # a factory that keeps what the server answered
        kwargs.setdefault("timeout", httpx2.Timeout(30, read=300))
        return httpx2.AsyncClient(event_hooks={"response": [keep_refusals]}, **kwargs)

    client = Client(StreamableHttpTransport(url, auth=auth, httpx_client_factory=http_client))
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
                print(
                    f"🔒 Admin tool server_config: {(await client.call_tool('server_config')).data}"
                )
    except (MCPError, RuntimeError) as e:  # how the fastmcp Client reports a failed request
        if refusals:
            raise ClientError(explain(refusals[-1], url)) from None
        cause = e.__cause__ or e.__context__
        if isinstance(cause, httpx2.ConnectError):
            untrusted = "CERTIFICATE_VERIFY_FAILED" in str(cause)
            raise ClientError(
                f"{url}: TLS certificate not trusted: set SSL_CERT_FILE to its CA's file"
                if untrusted
                else f"Failed to connect to {url}: is the server running? (uv run server.py)"
            ) from None
        raise
    print(f"🔌 Client disconnected: {client.is_connected()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Call the JWT-protected MCP server.")
    env = os.environ.get
    parser.add_argument("--url", default=env("MCP_URL", URL), help="the server's [env MCP_URL]")
    parser.add_argument("--issuer", default=env("MCP_ISSUER"), help="the authorization server: "
                        f"the minted token's iss (default {ISSUER}) [env MCP_ISSUER]")  # fmt: skip
    parser.add_argument("--private-key", type=Path, default=PRIVATE_KEY, metavar="PATH")
    parser.add_argument("--scopes", help=f'space-separated (default when minting: "{SCOPES}")')
    parser.add_argument("--expires-in", type=int, default=EXPIRES_IN, metavar="SECONDS")
    parser.add_argument("--print-token", action="store_true", help="print a token and exit")
    parser.add_argument("--client-id", default=env("MCP_CLIENT_ID"), help="get the token from "
                        "the authorization server, as this client [env MCP_CLIENT_ID]")  # fmt: skip
    parser.add_argument("--client-secret", default=env("MCP_CLIENT_SECRET"), help="its secret: "
                        "better in env MCP_CLIENT_SECRET than in shell history")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        url = urlsplit(args.url)
        url.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as e:
        parser.error(f"--url {args.url!r}: {e}")
    if url.scheme not in ("http", "https") or not url.hostname:
        parser.error(f"--url {args.url!r} is not an http(s) URL like {URL}")
    sys.stdout.reconfigure(errors="replace")  # a console without emoji gets "?", not a crash
    try:
        if args.client_id:
            if not args.client_secret:
                raise ClientError("--client-id needs its secret: set MCP_CLIENT_SECRET")
            from fastmcp.client.auth import ClientCredentialsOAuthProvider

            auth = ClientCredentialsOAuthProvider(
                client_id=args.client_id,
                client_secret=args.client_secret,
                scopes=args.scopes,  # None: what the server's challenge asks for
                issuer=args.issuer,
            )
            label = f"Token from the authorization server: {args.client_id}"
        else:
            key = load_private_key(args.private_key)
            issuer = args.issuer or ISSUER
            auth = mint_token(key, args.url, args.scopes or SCOPES, args.expires_in, issuer)
            if args.print_token:
                return print(auth)
            # Show only the token's first part (its header): a whole token is a password.
            label = f"Generated JWT token (self-signed):\n   {auth.split('.')[0]}..."
        asyncio.run(run(args.url, auth, label))
    except ClientError as e:
        sys.exit(f"Error: {e}")


if __name__ == "__main__":
    main()
