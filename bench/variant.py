"""server.py with exactly one of its speed choices undone, so the benchmark can print what that
choice is worth. Every rule and log of server.py is kept. A yardstick, not an example to copy.

    uv run bench/variant.py --undo tools|telemetry|uvloop --port 0 --public-key public.pem
    uv run --with httptools bench/variant.py --undo h11 --port 0 --public-key public.pem

--undo tools       greet and whoami as plain `def`: FastMCP runs each call in a worker thread
--undo telemetry   FASTMCP_TELEMETRY_MODE=native: FastMCP's OpenTelemetry spans, its default
--undo uvloop      uvicorn on the standard asyncio event loop instead of uvloop
--undo h11         uvicorn's httptools parser instead of h11 (not a dependency: --with httptools)
"""

import argparse
import functools
import os
import socket
import sys

from fastmcp.server.dependencies import get_access_token

import fastmcp_auth.server as server


# The same tools as server.py's, as sync functions (what most FastMCP examples write).
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


def whoami() -> dict:
    """Your token's subject and scopes, as the server sees them."""
    token = get_access_token()
    return {"subject": token.subject, "scopes": token.scopes}


def undo_tools() -> None:
    for tool in (greet, whoami):
        server.mcp.local_provider.remove_tool(tool.__name__)  # FastMCP 4's way to drop a tool
        server.mcp.tool(tool)


def undo_telemetry() -> None:
    os.environ["FASTMCP_TELEMETRY_MODE"] = "native"  # what server.main() reads


def undo_uvloop() -> None:
    # server.main() builds `uvicorn.Config(...)` with loop "auto" (uvloop when installed);
    # "asyncio" is the loop uvicorn falls back to without uvloop.
    server.uvicorn.Config = functools.partial(server.uvicorn.Config, loop="asyncio")
    # uvloop sets TCP_NODELAY on every connection; asyncio only when the listening socket has
    # proto IPPROTO_TCP, and socket.create_server's (server.py's) has 0: every answer would wait
    # ~40 ms for a delayed ACK. Set it, so this row measures the loop and nothing else.
    create_server = socket.create_server

    def with_nodelay(*args, **kwargs) -> socket.socket:
        sock = create_server(*args, **kwargs)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    server.socket.create_server = with_nodelay


def undo_h11() -> None:
    # server.main() passes http="h11" itself, and a call's keywords beat functools.partial's:
    # replace the keyword instead. bench/headers.py measures what h11 protects against.
    config = server.uvicorn.Config

    def with_httptools(app, **kwargs):  # uvicorn.Config(app, ...), whatever server.py passes
        return config(app, **{**kwargs, "http": "httptools"})

    server.uvicorn.Config = with_httptools


UNDO = {"tools": undo_tools, "telemetry": undo_telemetry, "uvloop": undo_uvloop, "h11": undo_h11}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--undo", choices=UNDO, required=True)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    UNDO[args.undo]()
    server.main(rest)  # every other flag is server.py's


if __name__ == "__main__":
    main()
