"""An MCP server whose tools answer only a valid RS256 JWT, checked with public keys alone.

    uv run server.py    # http://localhost:8000/mcp; --help for a deployment's settings

Each line is FastMCP's recipe for a JWT-protected server, but those marked `Rule:`, what
FastMCP's defaults leave out, and `Speed:`, choices measured in docs/performance.md.
"""

import gc
import ipaddress
import logging
import re
import sys
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pydantic_core
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastmcp import FastMCP, settings
from fastmcp.server.auth import RemoteAuthProvider
from fastmcp.server.auth.middleware import RequireAuthMiddleware
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token
from fastmcp.utilities.token_cache import TokenCache
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwt import JWTClaimsRegistry
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from pydantic import AnyHttpUrl, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from starlette.middleware import Middleware


# ── Settings: each flag has its MCP_* twin: --public-url, MCP_PUBLIC_URL ─────────────────────
class Settings(BaseSettings):
    """Serve MCP tools behind JWT bearer auth. --public-url: default http://localhost:PORT/mcp."""

    model_config = SettingsConfigDict(
        env_prefix="MCP_", cli_kebab_case=True, cli_show_env_vars=True, cli_exit_on_error=False
    )

    host: str = Field("127.0.0.1", min_length=1)  # beyond it: a proxy (docs/deploying.md)
    port: int = Field(8000, gt=0, lt=65536)
    public_url: str = ""
    issuer: str = "http://localhost:8000"
    public_key: Path = Path(__file__).resolve().parent / "public.pem"
    jwks_uri: str = ""

    @field_validator("public_url", "issuer", "jwks_uri")
    @classmethod
    def parsed(cls, url: str, field: ValidationInfo) -> str:
        """Rule: a URL is parsed, not matched by a pattern (`http://[::1` and `:99999` raise
        ValueError); and no wildcard host: `*` would turn FastMCP's Host check off."""
        if not url and field.field_name != "issuer":
            return url  # unset: the default applies
        parts = urlsplit(url)
        host = re.fullmatch(r"[\w.:-]+", parts.hostname or "")
        if parts.scheme not in ("http", "https") or not host or "@" in url or parts.port == 0:
            raise ValueError("expected http(s)://HOST[:PORT]/PATH, HOST a name or an address")
        # The audience is compared as a string: written as FastMCP writes the RFC 9728 `resource`
        canonical = str(AnyHttpUrl(f"{parts.scheme}://{parts.netloc}/mcp"))
        if field.field_name == "public_url" and url != canonical:
            raise ValueError("expected the URL clients use: http(s)://host[:port]/mcp, no query")
        return url  # as typed: `iss` and `aud` are compared as strings


try:  # flags only when run as a script: imported (by `fastmcp run`, tests), argv is not ours
    config = Settings(_cli_parse_args=__name__ == "__main__")
except ValidationError as e:  # one line, not a traceback: `--port abc`, `MCP_PORT=abc`
    sys.exit("Error: {loc[0]} {input!r}: {msg}".format_map(e.errors()[0]))
except SettingsError as e:  # a flag misspelt: one line, not argparse's usage
    sys.exit(f"Error: {e}")
PUBLIC_URL = config.public_url or f"http://localhost:{config.port}/mcp"
METADATA_URL = build_resource_metadata_url(
    AnyHttpUrl(PUBLIC_URL)
)  # as FastMCP builds it (RFC 9728)
BASE_SCOPE = "read"  # every request needs it
ADMIN_SCOPE = "admin"  # flat, as most identity providers: `admin` does not imply `read`

# ── Token rules: what FastMCP's JWTVerifier leaves out ──────────────────────────────────────
# Rule: RFC 9068 requires `exp` (FastMCP accepts none) and `sub`; times are numbers, iat not ahead.
CLAIM_RULES = JWTClaimsRegistry(leeway=30, exp={"essential": True}, sub={"essential": True})
MAX_TOKEN_BYTES = 8192  # Rule: refused unread; a JWT that size is an attack, not a token
MAX_LIFETIME = 24 * 3600  # Rule: an `exp` further ahead is a token that never dies
# Rule: a tool needing more than BASE_SCOPE is listed to every token, and a call without its
# scopes gets HTTP 403 `insufficient_scope` naming them: MCP's step-up. FastMCP's require_scopes
# would hide the tool and answer HTTP 200 "Unknown tool".
TOOL_SCOPES = {"server_config": [BASE_SCOPE, ADMIN_SCOPE]}  # every scope its call needs


class StrictJWTVerifier(JWTVerifier):
    """FastMCP's JWTVerifier, with the rules above and a cache of the tokens it accepted."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.verified = TokenCache(ttl_seconds=60, max_size=10_000)  # Speed: no RS256 check again

    async def load_access_token(self, token: str):
        hit, access = self.verified.get(token)
        if hit or len(token) > MAX_TOKEN_BYTES:  # too long: None, refused before any parsing
            return access
        try:  # Rule: FastMCP answers HTTP 500 to `exp` Infinity and to JSON nested 1,000 deep
            access = await super().load_access_token(token)  # None if refused: it logs why
            if access is not None:
                CLAIM_RULES.validate(access.claims)  # raises JoseError for a broken rule
                access.model_dump_json()  # raises for a claim JSON cannot encode (lone surrogate)
                if access.expires_at > CLAIM_RULES.now + MAX_LIFETIME + CLAIM_RULES.leeway:
                    raise InvalidClaimError("exp", "exp is further ahead than MAX_LIFETIME")
                self.verified.set(token, access)
        except (JoseError, OverflowError, RecursionError, ValueError) as e:
            self.logger.warning("Bearer token rejected: %s", e)
            return None
        return access


class StepUp:
    """ASGI middleware: FastMCP's own 403 for a tool call without its TOOL_SCOPES."""

    def __init__(self, app) -> None:
        self.app = app
        # Rule: the body read whole, capped as the SDK caps it (4 MiB): one sent in pieces is
        # checked whole, as the SDK will read it.
        self.read_whole = RequestBodyLimitMiddleware(self.check, DEFAULT_MAX_REQUEST_BODY_SIZE)

    async def __call__(self, scope, receive, send) -> None:
        signed_in = getattr(scope.get("user"), "is_authenticated", False)  # set by FastMCP's auth
        if scope["type"] == "http" and scope["method"] == "POST" and signed_in:
            await self.read_whole(scope, receive, send)
        else:  # no body to check; or no valid token: the route answers 401 unread
            await self.app(scope, receive, send)

    async def check(self, scope, receive, send) -> None:
        message = await receive()  # the whole body, joined by read_whole
        try:
            call = pydantic_core.from_json(message.get("body", b""))
            tool = call["params"]["name"] if call["method"] == "tools/call" else None
            needed = TOOL_SCOPES.get(tool, [])
        except (LookupError, TypeError):  # JSON, but no tool call: the SDK answers it
            needed = []
        except ValueError:  # Rule: not JSON here, maybe JSON to the SDK (a BOM): fail closed
            needed = sorted(set().union(*TOOL_SCOPES.values()))
        replay = [message]

        async def receive_again():  # the same body, once more, for the MCP SDK
            return replay.pop() if replay else await receive()

        if needed:  # FastMCP's route check, with this tool's scopes: 403 and the challenge
            next_app = RequireAuthMiddleware(self.app, needed, METADATA_URL, needed)
        else:
            next_app = self.app
        await next_app(scope, receive_again, send)


class StepUpAuthProvider(RemoteAuthProvider):
    def get_middleware(self) -> list:  # after FastMCP's own, which find the token
        return [*super().get_middleware(), Middleware(StepUp)]


# ── Objects: the key, the verifier, the auth provider, the server ───────────────────────────
if config.jwks_uri:  # Rule: FastMCP's ssrf_safe fetch (https, 64 KB, 30 s, no private address)
    jwks = urlsplit(config.jwks_uri)
    try:  # Rule: except on loopback, by address: `127.evil.example` is anyone's name
        local = jwks.hostname == "localhost" or ipaddress.ip_address(jwks.hostname).is_loopback
    except ValueError:  # a name, not an address
        local = False
    if jwks.scheme == "http" and not local:  # Rule: else every token refused, why logged at DEBUG
        sys.exit(f"Error: jwks_uri {config.jwks_uri!r}: plain http only on loopback: use https")
    keys = {"jwks_uri": config.jwks_uri, "ssrf_safe": not local}
else:
    try:  # Rule: a private key is a ValueError too: the server must never hold the signing key
        pem = config.public_key.read_bytes()
        key = load_pem_public_key(pem)
    except (OSError, ValueError) as e:
        sys.exit(f"Error: {config.public_key}: {e} (openssl rsa -in private.pem -pubout ...)")
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:  # Rule: RFC 7518 §3.3
        sys.exit(f"Error: {config.public_key} is not an RSA public key of 2048 bits or more")
    keys = {"public_key": pem.decode()}
# FastMCP checks `iss` and `aud` only when given; the audience is our public URL (RFC 8707).
verifier = StrictJWTVerifier(**keys, issuer=config.issuer, audience=PUBLIC_URL)
auth = StepUpAuthProvider(  # RFC 9728 metadata naming the issuer; every 401 links to it
    token_verifier=verifier,
    authorization_servers=[config.issuer],
    base_url=PUBLIC_URL.removesuffix("/mcp"),
    scopes_supported=[BASE_SCOPE],  # Rule: these three default to the verifier's scopes: none
    required_scopes=[BASE_SCOPE],  # a token without it: 403 with the challenge below
    challenge_scopes=[BASE_SCOPE],  # the scope= of every challenge
)
# FastMCP reads these as it builds the app, at the run: `fastmcp run server.py` gets them too.
settings.host = config.host
settings.port = config.port
settings.stateless_http = True  # Rule: no MCP sessions: none to exhaust, any replica answers
settings.http_host_origin_protection = True  # Rule: off by default; MCP: servers MUST check Origin
# The Host header may name the public URL's host, besides FastMCP's localhost names:
settings.http_allowed_hosts = [*(settings.http_allowed_hosts or []), urlsplit(PUBLIC_URL).hostname]
settings.json_response = True  # Speed: JSON, not SSE answers; a tool's progress is not streamed
settings.telemetry_mode = "off"  # Speed: no OpenTelemetry spans (env aside). Tracing: "native"
mcp = FastMCP("JWT-protected greeter", auth=auth)
# Rule: FastMCP's and the MCP SDK's log messages in %r: a newline or an escape code a client put
# in a claim is escaped, it cannot forge a line. (uvicorn's access log: proxy_headers, below.)
logging.basicConfig(format="%(levelname)s: %(message)r", force=True)
logging.getLogger("fastmcp").handlers = [*logging.getLogger().handlers]  # it does not propagate
verifier.logger.setLevel(logging.DEBUG)  # Rule: FastMCP logs a bad signature only at DEBUG
# FastMCP's own start line names the bind address, not the URL clients use: one URL, ours.
logging.getLogger("fastmcp.server.mixins.transport").setLevel(logging.WARNING)


# ── Tools: their docstrings are what clients see ────────────────────────────────────────────
@mcp.tool  # `async def`: no worker thread per call; a tool that blocks must be a plain `def`
async def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@mcp.tool
async def whoami() -> dict:
    """Your token's subject and scopes, as the server sees them."""
    token = get_access_token()  # never return token.token: tools' answers get logged and shown
    return {"subject": token.subject, "scopes": token.scopes}


@mcp.tool
async def server_config() -> dict:
    """The server's token rules. Needs the scopes read and admin."""
    return {"issuer": config.issuer, "audience": PUBLIC_URL, "scope": BASE_SCOPE}


# ── The run ──────────────────────────────────────────────────────────────────────────────────
if __name__ == "__main__":
    print(f"Starting FastMCP server on {PUBLIC_URL}", flush=True)  # `demo` and tests wait for it
    # Speed: the p99 tail was CPython's full collections, each walking the ~100k objects that
    # live as long as the server (docs/performance.md, the "default GC" rows).
    gc.collect()  # first, so that no garbage is kept for good
    gc.freeze()  # what exists now is never walked again
    gc.set_threshold(10_000)  # CPython's 700 ages the objects of calls in flight towards gen 2
    # Rule: h11, as httptools reads headers of any size; the access log names the peer, not an
    # X-Forwarded-For that anyone can send (behind nginx, nginx's log has the client).
    uvicorn_config = {"http": "h11", "proxy_headers": False}
    serve = partial(mcp.run_async, "http", show_banner=False, uvicorn_config=uvicorn_config)
    # Rule: uvloop, as at the descriptor limit asyncio's accept loop floods the log.
    anyio.run(serve, backend_options={"use_uvloop": sys.platform != "win32"})
