"""A FastMCP server whose tools only answer requests that carry a valid RS256 JWT.

The server holds only the public key: it can check tokens, never mint them.
Make the key pair once (`uv run -m fastmcp_auth keygen`), then:

    uv run server.py                # http://localhost:8000/mcp
    uv run server.py --port 9000 --public-key /path/to/public.pem
"""

import argparse
import os
import socket
import sys
from pathlib import Path

from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier

HERE = Path(__file__).resolve().parent
ISSUER = "http://localhost:8000"  # who mints the tokens; the client puts the same value in `iss`
PUBLIC_KEY_PATH = HERE / "public.pem"
HOST = "127.0.0.1"  # loopback: nothing outside this machine can reach the demo
PORT = 8000
KEYGEN_HINT = (
    "make a key pair with `uv run -m fastmcp_auth keygen`, or with openssl: "
    "`openssl genpkey -algorithm RSA -out private.pem -pkeyopt rsa_keygen_bits:2048` and "
    "`openssl rsa -in private.pem -pubout -out public.pem`"
)

mcp = FastMCP("JWT-protected greeter")


@mcp.tool
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


def mcp_url(port: int) -> str:
    """The URL clients connect to; a token for this server carries it as its audience."""
    return f"http://localhost:{port}/mcp"


def make_verifier(public_key_pem: str, port: int) -> JWTVerifier:
    # FastMCP checks `iss` and `aud` only when they are given, so always give both. The audience
    # is this server's own URL (RFC 8707): a token minted for another server is refused here.
    return JWTVerifier(
        public_key=public_key_pem,
        issuer=ISSUER,
        audience=mcp_url(port),
        algorithm="RS256",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the greet tool behind JWT authentication.")
    parser.add_argument("--host", default=HOST, help=f"address to bind (default {HOST})")
    parser.add_argument("--port", type=int, default=PORT, help=f"0 picks a free one ({PORT})")
    parser.add_argument("--public-key", type=Path, default=PUBLIC_KEY_PATH, metavar="PATH")
    args = parser.parse_args(argv)

    try:
        public_key_pem = args.public_key.read_text()
    except FileNotFoundError:
        sys.exit(f"Error: public key {args.public_key} not found: {KEYGEN_HINT}")

    # Bind before starting so a busy port is one clear line, not a uvicorn traceback.
    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        sys.exit(
            f"Error: cannot listen on {args.host} port {args.port} ({os.strerror(e.errno)}): "
            "stop what uses it, or pick another --port"
        )
    port = sock.getsockname()[1]

    mcp.auth = make_verifier(public_key_pem, port)
    print(f"Starting FastMCP server on {mcp_url(port)}", flush=True)
    mcp.run(transport="http", host=args.host, port=port, sockets=[sock], show_banner=False)


if __name__ == "__main__":
    main()
