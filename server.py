"""An MCP server whose tools answer only requests that carry a valid RS256 JWT bearer token.

It holds only public keys (public.pem, or an identity provider's JWKS): it checks tokens and
never mints them. Every request needs the `read` scope; the `server_config` tool also `admin`.

    uv run server.py           # the demo: http://localhost:8000/mcp, tokens checked with public.pem
    uv run server.py --help    # the settings, for a deployment (docs/deploying.md)
"""

import argparse
import logging
import os
import socket
import stat
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastmcp import FastMCP, settings
from fastmcp.server.auth import AccessToken, RemoteAuthProvider, require_scopes
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.lifespan import lifespan
from fastmcp.utilities.logging import configure_logging
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

# Settings: the demo's defaults. Each is a flag with an environment twin (--public-url,
# MCP_PUBLIC_URL); a deployment sets --public-url, --issuer and --jwks-uri.
SETTINGS = {  # name: (default, what it is)
    "host": ("127.0.0.1", "address to bind; beyond this machine, put a proxy in front"),
    "port": ("8000", "port to bind; 0 picks a free one"),
    "public_url": (
        "",
        "the URL clients use (http://localhost:PORT/mcp if not set): the token "
        "audience (RFC 8707), the RFC 9728 resource, an allowed Host",
    ),  # fmt: skip
    "issuer": ("http://localhost:8000", "who signs the tokens: their `iss`; the RFC 9728 AS"),
    "public_key": (str(Path(__file__).resolve().parent / "public.pem"), "the issuer's RSA key"),
    "jwks_uri": ("", "the issuer's JWKS URL, instead of --public-key"),
    "jwks_ttl": ("3600", "seconds a fetched JWKS is kept (FastMCP's default: an hour)"),
    "jwks_refresh": ("30", "seconds at least between JWKS fetches for an unknown key id"),
    "max_token_bytes": ("8192", "longer tokens get 401 before any signature work"),
    "max_lifetime": ("86400", "seconds: a token whose exp is further ahead gets 401"),
    "sessions_per_subject": ("100", "open MCP sessions per token holder; the next gets 429"),
    "json_response": ("false", "true: plain JSON answers, not SSE: less CPU, no progress"),
}
BASE_SCOPE, ADMIN_SCOPE = "read", "admin"  # flat: `admin` does not imply `read`
CACHE_SIZE = 10_000  # verified tokens kept (each at most --max-token-bytes)
SESSION_IDLE = 30 * 60  # seconds before an unused session closes (the MCP SDK's default)
log = logging.getLogger("fastmcp.server.auth.providers.jwt")  # where FastMCP says why it refused


class StrictJWTVerifier(JWTVerifier):
    """FastMCP's JWTVerifier (RS256 signature, `iss`, `aud`, `exp`/`nbf` when present) plus the
    rules it leaves to you, and a cache: a client sends the same token with every request."""

    def __init__(self, args: argparse.Namespace, public_key: str | None) -> None:
        # FastMCP checks `iss` and `aud` only when given: give both. The audience is this
        # server's public URL (RFC 8707): a token minted for another server is refused here.
        key = {"jwks_uri": args.jwks_uri} if args.jwks_uri else {"public_key": public_key}
        super().__init__(**key, issuer=args.issuer, audience=args.public_url, algorithm="RS256",
                         jwks_refresh_interval=int(args.jwks_refresh))  # fmt: skip
        self.max_bytes, self.max_lifetime = int(args.max_token_bytes), int(args.max_lifetime)
        self._cache_ttl = int(args.jwks_ttl)  # how long FastMCP keeps a JWKS (its default: 1 h)
        self.verified: dict[str, tuple[AccessToken, str]] = {}  # least recently used first

    async def load_access_token(self, token: str) -> AccessToken | None:
        if len(token) > self.max_bytes:  # refused unread, so the cache holds no huge entries
            return refuse("?", f"{len(token)} bytes, over --max-token-bytes")
        try:  # the key that verifies it now: public.pem, or its `kid`'s in FastMCP's JWKS copy
            key = await self._get_verification_key(token)
        except (ValueError, TypeError, AttributeError) as e:  # a kid unknown (FastMCP refetches
            return refuse("?", f"no key of the issuer's fits it ({e})")  # after --jwks-refresh s)
        access, cached_key = self.verified.pop(token, (None, None))
        # A cache hit counts only while its key is still published and it has not expired.
        if access is None or cached_key != key or access.expires_at <= time.time():
            access = await self.verify(token)
        if access is None:
            return None
        self.verified[token] = (access, key)
        if len(self.verified) > CACHE_SIZE:
            del self.verified[next(iter(self.verified))]
        if BASE_SCOPE not in access.scopes:  # RemoteAuthProvider answers 403; log why here
            log.warning("Bearer token of client %s lacks scope %s", access.client_id, BASE_SCOPE)
        return access

    async def verify(self, token: str) -> AccessToken | None:
        try:
            access = await super().load_access_token(token)  # logs why when it refuses
        except OverflowError:  # FastMCP's int(exp) on an `exp` of Infinity
            return refuse("?", "exp is not a finite number")
        if access is None:
            return None
        claims, now = access.claims, time.time()
        times = {name: claims[name] for name in ("exp", "nbf", "iat") if name in claims}
        if any(type(t) not in (int, float) or not 0 <= t < 1e11 for t in times.values()):
            return refuse(access.client_id, f"a time is not in seconds since 1970: {times!r:.80}")
        for broken, rule in (  # what RFC 9068 §2.2 and RFC 7519 ask and FastMCP leaves out
            ("exp" not in times, "no exp"),
            (times.get("exp", 0) > now + self.max_lifetime, "exp beyond --max-lifetime"),
            (times.get("iat", 0) > now + 30, "iat in the future"),  # 30 s: FastMCP's nbf leeway
            (not isinstance(claims.get("sub"), str) or not claims["sub"], "no sub"),
        ):
            if broken:
                return refuse(access.client_id, rule)
        return access


def refuse(client_id: str, why: str) -> None:
    log.warning("Bearer token rejected for client %s: %s", client_id, why)


def make_auth(args: argparse.Namespace, public_key: str | None) -> RemoteAuthProvider:
    # RemoteAuthProvider serves RFC 9728 metadata naming the issuer, points every 401 at it, and
    # answers a valid token without BASE_SCOPE with 403 (a bare verifier says 401).
    return RemoteAuthProvider(
        token_verifier=StrictJWTVerifier(args, public_key),
        authorization_servers=[args.issuer],
        base_url=args.public_url.removesuffix("/mcp"),
        scopes_supported=[BASE_SCOPE],  # what basic use needs (MCP: the minimal set)
        required_scopes=[BASE_SCOPE],
        challenge_scopes=[BASE_SCOPE],
    )


@lifespan
async def auth_required(server: FastMCP):  # `fastmcp run server.py` skips main(), and its auth
    if server.auth is None:
        raise RuntimeError("no auth: start it with `uv run server.py`")
    yield {}


mcp = FastMCP("JWT-protected greeter", lifespan=auth_required)


# `async def`: these tools run on the event loop, with no worker thread per call. A tool of
# yours that blocks (files, sockets, sleep, heavy CPU) must be a plain `def` instead.
@mcp.tool
async def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@mcp.tool
async def whoami() -> dict:
    """Your token's subject and scopes, as the server sees them."""
    token = get_access_token()  # never return token.token: tools' answers get logged and shown
    return {"subject": token.subject, "scopes": token.scopes}


# Hidden from tools/list for tokens without the admin scope, and refused if called anyway.
@mcp.tool(auth=require_scopes(ADMIN_SCOPE))
async def server_config() -> dict:
    """The server's token rules (admin scope only)."""
    verifier = mcp.auth.token_verifier
    return {"issuer": verifier.issuer, "audience": verifier.audience, "scope": BASE_SCOPE}


# Plumbing: logs an operator can read, sessions shared fairly, start-up checks.
def one_line_warning(record: logging.LogRecord) -> bool:
    # FastMCP logs a bad signature at DEBUG, an expired token at INFO, a wrong issuer at WARNING;
    # the operator needs every reason, one line each, a value from a token unable to break it.
    text = record.getMessage()[:600]
    record.msg = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    record.args, record.levelno, record.levelname = None, logging.WARNING, "WARNING"
    return True


def hide_query_string(record: logging.LogRecord) -> bool:  # where a careless client puts tokens
    if isinstance(record.args, tuple) and len(record.args) == 5:  # uvicorn's access line
        client, method, path, version, status = record.args
        record.args = (client, method, path.partition("?")[0], version, status)
    return True


class SessionsPerSubject:
    """At most `limit` open MCP sessions per token holder: the MCP SDK caps them only for the
    whole server (10,000), so one token could otherwise lock everyone else out."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit
        self.open: dict[tuple, dict] = {}  # holder: {session id: [requests in flight, last end]}

    async def __call__(self, scope, receive, send) -> None:
        access = getattr(scope.get("user"), "access_token", None)
        if access is None or scope["path"] != "/mcp":  # nothing that can open a session
            return await self.app(scope, receive, send)
        holder = (access.client_id, access.subject)  # what the SDK binds a session to
        mine, headers = self.open.setdefault(holder, {}), Headers(scope=scope)
        sid, version = headers.get("mcp-session-id"), headers.get("mcp-protocol-version")
        # The SDK may open a session for a request without one, unless it names a sessionless
        # protocol version (2026-07-28 on): that is where the cap applies.
        opening = sid is None and (version is None or version in HANDSHAKE_PROTOCOL_VERSIONS)
        if opening and len(mine) >= self.limit:
            now = time.monotonic()  # the SDK closes a session unused for SESSION_IDLE
            for idle in [s for s, (n, end) in mine.items() if not n and now - end > SESSION_IDLE]:
                del mine[idle]
            if len(mine) >= self.limit:
                log.warning("Refused a new session to %s: %d open", access.subject, len(mine))
                return await PlainTextResponse("Too many open sessions", 429)(scope, receive, send)
        if opening:
            sid = object()  # holds a place while it is answered: concurrent opens count too
            mine[sid] = [0, 0.0]
        slot, answer = mine.get(sid, [0, 0.0]), {}
        slot[0] += 1

        def watch(message):  # a plain function: no extra coroutine for every message
            if message["type"] == "http.response.start":
                answer.update(status=message["status"], headers=Headers(raw=message["headers"]))
            return send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            slot[0], slot[1] = slot[0] - 1, time.monotonic()
            status, opened = answer.get("status"), answer.get("headers", {}).get("mcp-session-id")
            if opening:
                del mine[sid]
                if status == 200 and opened:
                    mine[opened] = [0, slot[1]]
            elif status == 404 or (scope["method"] == "DELETE" and status == 200):
                mine.pop(sid, None)  # the SDK says it is gone, or has just closed it
            if not mine:
                self.open.pop(holder, None)


def log_refused_hosts(app):
    """FastMCP answers a Host or Origin it does not allow with a bare 421 or 403 and logs nothing:
    say which (a 403 for a missing scope carries a challenge, this one does not)."""

    async def logged(scope, receive, send) -> None:
        def watch(message):  # a plain function: no extra coroutine for every message
            status = message.get("status")
            if status in (421, 403) and "www-authenticate" not in Headers(raw=message["headers"]):
                host, origin = Headers(scope=scope).get("host"), Headers(scope=scope).get("origin")
                log.warning(
                    "Refused Host %s, Origin %s (%d): allow it with --public-url or "
                    "FASTMCP_HTTP_ALLOWED_HOSTS", host, origin, status,
                )  # fmt: skip
            return send(message)

        await app(scope, receive, watch)

    return logged


def load_public_key(path: Path) -> str:
    """The PEM text of an RSA public key of 2048 bits or more; or exit with one line."""
    hint = (  # for a reader who copied this file alone, too
        "make it with `openssl genpkey -algorithm RSA -out private.pem -pkeyopt rsa_keygen_bits:"
        "2048 && openssl rsa -in private.pem -pubout -out public.pem` (or, in the fastmcp-auth "
        "repository, `uv run -m fastmcp_auth keygen`)"
    )
    try:
        info = path.stat()  # a FIFO would block a read, /dev/zero or a huge file fill memory
        if not stat.S_ISREG(info.st_mode) or info.st_size > 64 * 1024:
            sys.exit(f"Error: {path} is not a public key file (a regular file of < 64 KB)")
        pem = path.read_bytes()
        key = load_pem_public_key(pem)
    except FileNotFoundError:
        sys.exit(f"Error: public key {path} not found: {hint}")
    except OSError as e:
        sys.exit(f"Error: cannot read public key {path} ({e.strerror})")
    except ValueError:
        if b"PRIVATE KEY" in pem:  # the server must never hold the signing key
            sys.exit(f"Error: {path} is a private key: the server needs only public.pem")
        sys.exit(f"Error: {path} is not a PEM public key: {hint}")
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        sys.exit(f"Error: {path} is not an RSA public key of 2048 bits or more, as RS256 needs")
    return pem.decode()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve MCP tools behind JWT authentication.")
    for name, (default, meaning) in SETTINGS.items():
        env = f"MCP_{name.upper()}"
        shown = f"[env {env}, default {default}]" if default else f"[env {env}]"
        switch = {"nargs": "?", "const": "true"} if default == "false" else {}  # --flag: true
        flag, value = f"--{name.replace('_', '-')}", os.environ.get(env, default)
        parser.add_argument(flag, default=value, help=f"{meaning} {shown}", **switch)
    args = parser.parse_args(argv)
    for name, (default, _) in SETTINGS.items():  # whole numbers, in ASCII: int() takes "٨٠"
        value = getattr(args, name)
        if default.isdigit() and not (value.isascii() and value.isdigit() and int(value) > 0):
            if name != "port" or value != "0":
                parser.error(f"--{name.replace('_', '-')} {value!r} is not a whole number > 0")
    if int(args.port) > 65535:
        parser.error(f"--port {args.port!r} is not a port number (0 to 65535)")
    if int(args.jwks_ttl) < int(args.jwks_refresh):  # else FastMCP may not refetch when it expires
        parser.error("--jwks-ttl must be at least --jwks-refresh")
    if not args.host.strip():
        parser.error("--host '' would listen on every interface: name an address")
    for flag, text, required in [
        ("--public-url", args.public_url, False),
        ("--issuer", args.issuer, True),
        ("--jwks-uri", args.jwks_uri, False),
    ]:
        url = urlsplit(text)
        plain = url.scheme in ("http", "https") and url.hostname and not (url.query or url.username)
        if (text or required) and not (plain and not url.fragment):
            parser.error(f"{flag} {text!r} is not an http(s) URL (no query, fragment or user)")
    if args.public_url and urlsplit(args.public_url).path != "/mcp":
        parser.error(f"--public-url {args.public_url!r} must end in /mcp, where the server serves")
    host = urlsplit(args.jwks_uri).hostname or ""  # keys fetched over plain HTTP: anyone's
    if args.jwks_uri.startswith("http:") and not (host == "localhost" or host.startswith("127.")):
        parser.error(f"--jwks-uri {args.jwks_uri!r}: use https (plain http on loopback only)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    public_key = None if args.jwks_uri else load_public_key(Path(args.public_key))
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:  # bind first: a busy port is one clear line, and --port 0 learns its number
        sock = socket.create_server((args.host, int(args.port)), family=family)
    except OSError as e:
        where = f"{args.host} port {args.port}"
        sys.exit(f"Error: cannot listen on {where} ({e.strerror}): try another --port or --host")
    # asyncio sets TCP_NODELAY only on sockets it binds itself (uvloop on all): without it, an
    # answer sent in two writes waits 40 ms for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    args.public_url = args.public_url or f"http://localhost:{sock.getsockname()[1]}/mcp"
    mcp.auth = make_auth(args, public_key)
    settings.enable_rich_logging = False  # one line per event, easy to grep
    configure_logging(settings.log_level)
    log.setLevel(logging.DEBUG)
    log.addFilter(one_line_warning)
    logging.getLogger("uvicorn.access").addFilter(hide_query_string)
    # FastMCP's OpenTelemetry spans cost CPU on every call: off unless FASTMCP_TELEMETRY_MODE says.
    settings.telemetry_mode = os.environ.get("FASTMCP_TELEMETRY_MODE", "off")
    hosts = [*(settings.http_allowed_hosts or []), urlsplit(args.public_url).hostname]
    app = mcp.http_app(
        json_response=args.json_response.lower() == "true",
        host_origin_protection=True,  # FastMCP's default is off; MCP: servers MUST check Origin
        allowed_hosts=hosts,  # besides the loopback names and the bound address
        session_idle_timeout=SESSION_IDLE,
        middleware=[Middleware(SessionsPerSubject, limit=int(args.sessions_per_subject))],
    )
    print(f"Starting FastMCP server on {args.public_url}", flush=True)
    # loop "auto": uvloop where installed (less CPU per call than asyncio). h11, never
    # httptools, which takes request headers of any size (measured: 200 MB) where h11 says 400.
    # No `server: uvicorn` header: nothing to tell a scanner, and one header less per answer.
    config = uvicorn.Config(log_refused_hosts(app), http="h11", server_header=False)
    for handler in logging.getLogger("uvicorn.access").handlers:  # "INFO: ...", as the rest,
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))  # and cheaper
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
