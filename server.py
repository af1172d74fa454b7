"""An MCP server whose tools answer only a valid RS256 JWT, checked with public keys alone.

uv run server.py    # http://localhost:8000/mcp; --help for a deployment's settings
"""

import ipaddress
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastmcp import FastMCP, settings
from fastmcp.server.auth import RemoteAuthProvider, require_scopes
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token
from fastmcp.utilities.token_cache import TokenCache
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwt import JWTClaimsRegistry
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings


class Settings(BaseSettings, env_prefix="MCP_", cli_kebab_case=True, cli_show_env_vars=True):
    """Serve MCP tools behind JWT bearer auth. --public-url: default http://localhost:PORT/mcp."""

    host: str = "127.0.0.1"  # beyond this machine, put a proxy in front (docs/deploying.md)
    port: int = Field(8000, gt=0, lt=65536)
    public_url: str = Field("", pattern=r"^(https?://[^/?#@\s]+/mcp)?$")
    issuer: str = Field("http://localhost:8000", pattern=r"^https?://[^?#@\s]+$")
    public_key: Path = Path(__file__).resolve().parent / "public.pem"
    jwks_uri: str = Field("", pattern=r"^(https?://[^#@\s]+)?$")


try:  # flags only when run as a script: imported (by `fastmcp run`, tests), argv is not ours
    config = Settings(_cli_parse_args=__name__ == "__main__")
except ValidationError as e:  # one line, not a traceback: `--port abc`, `MCP_PORT=abc`
    sys.exit("Error: {loc[0]} {input!r}: {msg}".format_map(e.errors()[0]))
PUBLIC_URL = config.public_url or f"http://localhost:{config.port}/mcp"
BASE_SCOPE, ADMIN_SCOPE = "read", "admin"  # flat: `admin` does not imply `read`
MAX_TOKEN_BYTES, MAX_LIFETIME = 8192, 24 * 3600  # a token's size; how far ahead its `exp` may be


class StrictJWTVerifier(JWTVerifier):
    """FastMCP's JWTVerifier plus what it leaves out: `exp`, `sub`, finite times, no `iat` ahead"""

    claims = JWTClaimsRegistry(leeway=30, exp={"essential": True}, sub={"essential": True})

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cache = TokenCache(ttl_seconds=60, max_size=10_000)  # an RS256 check: ~100 µs

    async def load_access_token(self, token: str):
        hit, access = self.cache.get(token)
        if hit or len(token) > MAX_TOKEN_BYTES:  # too long: None, refused before any parsing
            return access
        try:  # FastMCP answers HTTP 500 to `exp` Infinity and to JSON nested 1,000 deep
            if access := await super().load_access_token(token):  # it logs why it refuses
                self.claims.validate(access.claims)
                access.model_dump_json()  # a claim JSON cannot encode (a lone surrogate): refused
                if access.expires_at > self.claims.now + MAX_LIFETIME + self.claims.leeway:
                    raise InvalidClaimError("exp", "exp is further ahead than MAX_LIFETIME")
                self.cache.set(token, access)
        except (JoseError, OverflowError, RecursionError, ValueError) as e:
            return self.logger.warning("Bearer token rejected: %s", e)  # None: refused
        return access


if config.jwks_uri:  # FastMCP's ssrf_safe fetch: https only, 64 KB, 30 s, no private addresses
    try:  # loopback decided by address: `127.evil.example` is a name anyone may own
        local = ipaddress.ip_address(host := urlsplit(config.jwks_uri).hostname).is_loopback
    except ValueError:
        local = host == "localhost"
    keys = {"jwks_uri": config.jwks_uri, "ssrf_safe": not local}  # plain fetch on loopback
else:
    try:  # a private key is a ValueError too: the server must never hold the signing key
        key = load_pem_public_key(pem := config.public_key.read_bytes())
    except (OSError, ValueError) as e:
        sys.exit(f"Error: {config.public_key}: {e} (openssl rsa -in private.pem -pubout ...)")
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        sys.exit(f"Error: {config.public_key} is not an RSA public key of 2048 bits or more")
    keys = {"public_key": pem.decode()}
# FastMCP checks `iss` and `aud` only when given; the audience is our public URL (RFC 8707). RFC
# 9728 metadata names the issuer, every 401 links to it; a token without BASE_SCOPE gets 403.
auth = RemoteAuthProvider(
    token_verifier=StrictJWTVerifier(**keys, issuer=config.issuer, audience=PUBLIC_URL),
    authorization_servers=[config.issuer],
    base_url=PUBLIC_URL.removesuffix("/mcp"),
    scopes_supported=[BASE_SCOPE],  # each of the three defaults to the verifier's scopes: none
    required_scopes=[BASE_SCOPE],
    challenge_scopes=[BASE_SCOPE],  # the scope= of every challenge
)
mcp = FastMCP("JWT-protected greeter", auth=auth)  # set at import: `fastmcp run` gets them too
settings.stateless_http = True  # no MCP sessions: none to exhaust, and any replica answers
settings.http_host_origin_protection = True  # off by default; MCP: servers MUST check Origin
settings.http_allowed_hosts = [*(settings.http_allowed_hosts or []), urlsplit(PUBLIC_URL).hostname]
settings.json_response = True  # JSON, not SSE: less CPU a call; a tool's progress not streamed
settings.host, settings.port = config.host, config.port  # where run_async and `fastmcp run` bind
auth.token_verifier.logger.setLevel(logging.DEBUG)  # FastMCP logs bad signatures at DEBUG
(handler := logging.StreamHandler()).setFormatter(logging.Formatter("%(levelname)s: %(message)r"))
logging.getLogger("fastmcp").handlers = [handler]  # %r: a claim's newline cannot forge a line
logging.getLogger("fastmcp.server.mixins.transport").setLevel(logging.WARNING)  # the bind URL


@mcp.tool  # `async def`: no worker thread per call; a tool that blocks must be a plain `def`
async def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@mcp.tool
async def whoami() -> dict:
    """Your token's subject and scopes, as the server sees them."""
    token = get_access_token()  # never return token.token: tools' answers get logged and shown
    return {"subject": token.subject, "scopes": token.scopes}


@mcp.tool(auth=require_scopes(ADMIN_SCOPE))  # hidden from other tokens, and refused to them
async def server_config() -> dict:
    """The server's token rules (admin scope only)."""
    return {"issuer": config.issuer, "audience": PUBLIC_URL, "scope": BASE_SCOPE}


if __name__ == "__main__":
    print(f"Starting FastMCP server on {PUBLIC_URL}", flush=True)
    # h11: httptools reads headers of any size. uvloop: asyncio floods the log at the fd limit.
    serving = mcp.run_async("http", show_banner=False, uvicorn_config={"http": "h11"})
    anyio.run(lambda: serving, backend_options={"use_uvloop": sys.platform != "win32"})
