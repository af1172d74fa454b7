"""The benchmark's no-auth twin: server.py's own tools, served with server.py's settings (Host and
Origin checks, logging, a pre-bound socket), but without the token check. It answers anyone: a
yardstick, not an example to copy.

    uv run bench/twin.py --port 0 --public-key public.pem
"""

import argparse
import socket
from pathlib import Path

from fastmcp import FastMCP
from fastmcp.server.auth import require_scopes

from fastmcp_auth import server

twin = FastMCP("no-auth twin")
twin.tool(server.greet)
twin.tool(server.whoami)
twin.tool(server.server_config, auth=require_scopes(server.ADMIN_SCOPE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--public-key", type=Path, default=server.PUBLIC_KEY_PATH)
    args = parser.parse_args()
    sock = socket.create_server((server.HOST, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    # server.py's own settings and logging, so the two differ only in the token check: the auth
    # that protect() gives server.mcp is never served here.
    server.protect(server.load_public_key(args.public_key), port)
    print(f"Starting FastMCP server on {server.mcp_url(port)}", flush=True)
    twin.run(transport="http", sockets=[sock], host=server.HOST, port=port, show_banner=False)


if __name__ == "__main__":
    main()
