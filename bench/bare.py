"""The benchmark's other yardstick: a bare FastMCP server with every default (no auth, sessions
when a client asks for one, telemetry on, asyncio's loop, default host checks and logging, access
log on) and the same greet tool as a plain `def`. It answers anyone: a yardstick, not an example
to copy.

    uv run bench/bare.py --port 8002
"""

import argparse
from pathlib import Path

from fastmcp import FastMCP

mcp = FastMCP("bare")


@mcp.tool
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--public-key", type=Path, help="accepted and ignored")
    args = parser.parse_args()
    print(f"Starting bare FastMCP server on http://localhost:{args.port}/mcp", flush=True)
    mcp.run(transport="http", port=args.port, show_banner=False)  # host 127.0.0.1, its default


if __name__ == "__main__":
    main()
