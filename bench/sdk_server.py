"""The benchmark's yardstick from the official MCP SDK: its own `MCPServer` with a PyJWT
`TokenVerifier` applying our rules (RS256 only, our issuer, its own URL as audience, `exp`
required, `read` scope required), the same greet tool, the SDK's default settings and uvicorn's
access log. A yardstick, not an example to copy.

    uv run bench/sdk_server.py --port 0 --public-key public.pem
"""

import argparse
import logging
import socket
from pathlib import Path

import anyio
import jwt
import uvicorn
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

HOST = "127.0.0.1"  # the SDK's default
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001, help="0: any free port")
    parser.add_argument("--public-key", type=Path, required=True)
    args = parser.parse_args()
    sock = socket.create_server((HOST, args.port))  # bound first, so port 0 has a number
    # What a socket uvicorn binds itself gets under asyncio (proto 6: asyncio sets TCP_NODELAY);
    # create_server's has proto 0, and without it every answer waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    url = f"http://localhost:{port}/mcp"
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
    mcp.tool()(greet)
    # What MCPServer.run(transport="streamable-http") does, but serving the pre-bound socket.
    app = mcp.streamable_http_app(host=HOST)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="info"))
    print(f"Starting FastMCP server on {url}", flush=True)
    anyio.run(lambda: server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
