"""The benchmark's other yardstick: a bare FastMCP server with every default (no auth, default
host checks and logging, access log on) and the same greet tool. It answers anyone: a yardstick,
not an example to copy.

    uv run bench/bare.py --port 0
"""

import argparse
import socket
from pathlib import Path

from fastmcp import FastMCP

HOST = "127.0.0.1"  # FastMCP's default

mcp = FastMCP("bare")


@mcp.tool
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="0: any free port")
    parser.add_argument("--public-key", type=Path, help="accepted and ignored")
    args = parser.parse_args()
    sock = socket.create_server((HOST, args.port))  # bound first, so port 0 has a number
    # What a socket uvicorn binds itself gets under asyncio (proto 6: asyncio sets TCP_NODELAY);
    # create_server's has proto 0, and without it every answer waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    print(f"Starting FastMCP server on http://localhost:{port}/mcp", flush=True)
    mcp.run(transport="http", port=port, sockets=[sock], show_banner=False)


if __name__ == "__main__":
    main()
