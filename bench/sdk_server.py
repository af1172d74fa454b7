"""The benchmark's yardstick from the official MCP SDK: its own `MCPServer` with a PyJWT
`TokenVerifier` applying our rules (RS256 only, our issuer, its own URL as audience, `exp` and
`sub` required, `read` scope required), the same greet tool, and the SDK's defaults: its own
`run("streamable-http")` (sessions when a client asks for one, asyncio's loop, uvicorn's access
log at INFO). A yardstick, not an example to copy.

    uv run bench/sdk_server.py --port 8001 --public-key public.pem [--async-tool]

--async-tool serves greet as an `async def`, as server.py does: no worker thread per call.
"""

import argparse
import logging
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

ISSUER = "http://localhost:8000"
REQUIRED_SCOPE = "read"

logger = logging.getLogger("sdk_server")


class PyJWTVerifier:
    """A `TokenVerifier` (the SDK's protocol): PyJWT checks signature, issuer, audience, expiry."""

    def __init__(self, public_key_pem: bytes, audience: str) -> None:
        self.key = load_pem_public_key(public_key_pem)  # parsed once, not per request
        self.audience = audience

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=["RS256"],
                issuer=ISSUER,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            logger.info("Bearer token refused: %s", exc)
            return None
        return AccessToken(
            token=token,
            client_id=claims.get("client_id", claims["sub"]),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=claims["exp"],
            resource=self.audience,
            subject=claims["sub"],
        )


def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


async def async_greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--public-key", type=Path, required=True)
    parser.add_argument("--async-tool", action="store_true", help="greet as an async def")
    args = parser.parse_args()
    url = f"http://localhost:{args.port}/mcp"
    mcp = MCPServer(
        "sdk-bench",
        token_verifier=PyJWTVerifier(args.public_key.read_bytes(), url),
        auth=AuthSettings(
            issuer_url=ISSUER,
            resource_server_url=url,
            required_scopes=[REQUIRED_SCOPE],
            validate_token_resource=False,  # the verifier checks `aud` itself
        ),
    )
    mcp.tool(name="greet")(async_greet if args.async_tool else greet)
    print(f"Starting MCP SDK server on {url}", flush=True)
    mcp.run("streamable-http", port=args.port)  # host 127.0.0.1, its default


if __name__ == "__main__":
    main()
