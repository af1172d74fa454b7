"""A FastMCP server whose tools answer only requests that carry a valid RS256 JWT.

It holds only the public key: it can check tokens, never mint them. Every request needs the `read`
scope; `server_config` also needs `admin`. Make the key pair once (`uv run -m fastmcp_auth keygen`):

    uv run server.py                # http://localhost:8000/mcp
    uv run server.py --port 9000 --public-key /path/to/public.pem
"""

import argparse
import logging
import socket
import sys
import time
from collections import OrderedDict
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastmcp import FastMCP, settings
from fastmcp.server.auth import AccessToken, RemoteAuthProvider, require_scopes
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.lifespan import lifespan
from fastmcp.utilities.logging import configure_logging

HERE = Path(__file__).resolve().parent
ISSUER = "http://localhost:8000"  # who mints the tokens; the client puts the same value in `iss`
BASE_SCOPE = "read"  # every MCP request needs it
ADMIN_SCOPE = "admin"
SCOPES_SUPPORTED = [BASE_SCOPE, "write", ADMIN_SCOPE]
PUBLIC_KEY_PATH = HERE / "public.pem"
CACHE_SIZE = 10_000  # verified tokens kept; past this, the least recently used is dropped
HOST = "127.0.0.1"  # loopback: nothing outside this machine can reach the demo
PORT = 8000
KEYGEN_HINT = (
    "make a key pair with `uv run -m fastmcp_auth keygen`, or with openssl: "
    "`openssl genpkey -algorithm RSA -out private.pem -pkeyopt rsa_keygen_bits:2048` and "
    "`openssl rsa -in private.pem -pubout -out public.pem`"
)

log = logging.getLogger("fastmcp.server.auth.providers.jwt")  # where FastMCP says why it refused


@lifespan
async def refuse_to_serve_unprotected(server: FastMCP):
    # `fastmcp run server.py` would find `mcp` before protect() has given it its auth.
    if server.auth is None:
        raise RuntimeError(
            "no auth: start it with `uv run server.py` or `fastmcp run server.py:create_server`"
        )
    yield {}


mcp = FastMCP("JWT-protected greeter", lifespan=refuse_to_serve_unprotected)


@mcp.tool
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@mcp.tool
def whoami() -> dict:
    """Your token's subject and scopes, as the server sees them."""
    token = get_access_token()  # never return token.token: tools' answers get logged and shown
    return {"subject": token.subject, "scopes": token.scopes}


# Hidden from tools/list for tokens without the admin scope, and refused if called anyway.
@mcp.tool(auth=require_scopes(ADMIN_SCOPE))
def server_config() -> dict:
    """The server's token rules (admin scope only)."""
    return {"issuer": ISSUER, "required_scope": BASE_SCOPE, "scopes": SCOPES_SUPPORTED}


class StrictJWTVerifier(JWTVerifier):
    """FastMCP's JWTVerifier, plus the rules it leaves to you, and a cache of verified tokens:
    a client sends one token with every request, and its RS256 signature need not be checked
    again and again."""

    def __init__(self, *, cache_size: int = CACHE_SIZE, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cache_size = cache_size
        self.verified: OrderedDict[str, AccessToken] = OrderedDict()  # least recently used first

    async def load_access_token(self, token: str) -> AccessToken | None:
        access = self.verified.get(token)
        if access is None or access.expires_at <= time.time():  # expiry checked on every hit
            self.verified.pop(token, None)
            access = await self.verify_uncached(token)
            if access is None:
                return None
            self.verified[token] = access
            if len(self.verified) > self.cache_size:
                self.verified.popitem(last=False)
        self.verified.move_to_end(token)
        if BASE_SCOPE not in access.scopes:  # RemoteAuthProvider answers 403; say why here
            log.warning("Bearer token of client %s lacks scope %r", access.client_id, BASE_SCOPE)
        return access

    async def verify_uncached(self, token: str) -> AccessToken | None:
        access = await super().load_access_token(token)
        if access is None:
            return None  # FastMCP has logged why
        exp = access.claims.get("exp")
        # FastMCP accepts a token without `exp`; RFC 9068 §2.2 requires one.
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            log.warning("Bearer token rejected for client %s: no numeric exp", access.client_id)
            return None
        return access


def all_refusals_as_warnings(record: logging.LogRecord) -> bool:
    # FastMCP logs a refused signature at DEBUG, an expired token at INFO, a wrong issuer at
    # WARNING; the operator needs every reason (the client is only told "invalid_token").
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def mcp_url(port: int) -> str:
    """The URL clients connect to; a token for this server carries it as its audience."""
    return f"http://localhost:{port}/mcp"


def make_auth(public_key_pem: str, port: int) -> RemoteAuthProvider:
    # FastMCP checks `iss` and `aud` only when given, so give both. The audience is this server's
    # own URL (RFC 8707): a token minted for another server is refused here.
    verifier = StrictJWTVerifier(
        public_key=public_key_pem, issuer=ISSUER, audience=mcp_url(port), algorithm="RS256"
    )
    # RemoteAuthProvider serves RFC 9728 metadata and names it in each 401, as the MCP spec asks,
    # and answers a valid token without BASE_SCOPE with 403, where a bare verifier says 401.
    return RemoteAuthProvider(
        token_verifier=verifier,
        authorization_servers=[ISSUER],
        base_url=f"http://localhost:{port}",
        scopes_supported=SCOPES_SUPPORTED,
        required_scopes=[BASE_SCOPE],
        challenge_scopes=[BASE_SCOPE],
    )


def load_public_key(path: Path) -> str:
    """The PEM text of an RSA public key; or exit with one line that says what is wrong."""
    try:
        pem = path.read_bytes()
        if b"PRIVATE KEY-----" in pem:
            sys.exit(f"Error: {path} is a private key; the server needs only public.pem")
        if not isinstance(load_pem_public_key(pem), rsa.RSAPublicKey):
            sys.exit(f"Error: {path} is not an RSA public key, which RS256 needs")
    except FileNotFoundError:
        sys.exit(f"Error: public key {path} not found: {KEYGEN_HINT}")
    except OSError as e:
        sys.exit(f"Error: cannot read public key {path} ({e.strerror})")
    except ValueError:
        sys.exit(f"Error: {path} is not a PEM public key: {KEYGEN_HINT}")
    return pem.decode()


def hide_query_string(record: logging.LogRecord) -> bool:
    # uvicorn's access log prints query strings, where a careless client may put its token.
    client, method, path, version, status = record.args
    record.args = (client, method, path.partition("?")[0], version, status)
    return True


def protect(public_key_pem: str, port: int) -> FastMCP:
    """Put `mcp` behind the token rules, for clients of mcp_url(port), and log every refusal."""
    mcp.auth = make_auth(public_key_pem, port)
    # FastMCP leaves Host/Origin checks off; the MCP transport spec says servers MUST check
    # Origin (DNS rebinding). On: any Host but localhost and the bound address is refused.
    settings.http_host_origin_protection = True
    settings.enable_rich_logging = False  # one line per event, easy to grep
    configure_logging(settings.log_level)
    log.setLevel(logging.DEBUG)
    log.addFilter(all_refusals_as_warnings)
    logging.getLogger("uvicorn.access").addFilter(hide_query_string)
    return mcp


def create_server() -> FastMCP:
    """For `fastmcp run server.py:create_server --transport http`: public.pem, port 8000."""
    return protect(load_public_key(PUBLIC_KEY_PATH), settings.port)


def port_number(text: str) -> int:
    """argparse type for --port: 0 to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the greet tool behind JWT authentication.")
    parser.add_argument("--host", default=HOST, help=f"address to bind (default {HOST})")
    parser.add_argument("--port", type=port_number, default=PORT, help=f"0: any free ({PORT})")
    parser.add_argument("--public-key", type=Path, default=PUBLIC_KEY_PATH, metavar="PATH")
    parser.add_argument(
        "--json-response",
        action="store_true",
        help="answer with plain JSON, not an SSE stream: less CPU per call, but no progress "
        "or log notifications while a tool runs",
    )
    args = parser.parse_args(argv)
    public_key_pem = load_public_key(args.public_key)
    try:  # bind first, so that a busy port is one clear line rather than a traceback
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        reason = e.strerror.partition(" (while attempting")[0]  # socket adds the address
        where = f"{args.host} port {args.port}"
        sys.exit(f"Error: cannot listen on {where} ({reason}): try another --port or --host")
    # asyncio sets TCP_NODELAY only on sockets it binds itself; accepted connections inherit it
    # from here. Without it, each response sent in two writes (every 401) waits 40 ms for an ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    protect(public_key_pem, port)
    print(f"Starting FastMCP server on {mcp_url(port)}", flush=True)
    mcp.run(
        transport="http",
        sockets=[sock],
        host=args.host,
        port=port,
        show_banner=False,
        json_response=args.json_response,
    )


if __name__ == "__main__":
    main()
