"""server.py with exactly one of its speed choices undone, so the benchmark can print what that
choice is worth. server.py runs as it is (runpy), every rule and log kept; only the one choice is
patched, before it is imported or just before it serves. A yardstick, not an example to copy.

    uv run bench/variant.py --undo json|tools|uvloop|cache|gc|telemetry --port 8000 \
        --public-key public.pem
    uv run --with httptools bench/variant.py --undo h11 --port 8000 --public-key public.pem

--undo json        answers as SSE streams, FastMCP's default, instead of plain JSON
--undo tools       its tools as plain `def`: FastMCP runs each call in a worker thread
--undo uvloop      the standard asyncio event loop instead of uvloop
--undo cache       no cache of verified tokens: an RS256 signature check on every request
--undo gc          CPython's default garbage collector: nothing frozen, gen-0 threshold 700
--undo telemetry   FastMCP's OpenTelemetry spans on (telemetry_mode "native"), its default
--undo stepup      no step-up check: no body read before the SDK's (a rule, not a speed choice:
                   this row only says what it costs; server_config is then unguarded)
--undo h11         uvicorn's httptools parser instead of h11 (not a dependency: --with httptools)
"""

import argparse
import gc
import runpy
import sys
from functools import partial
from pathlib import Path

import anyio
import uvicorn
from fastmcp import settings
from fastmcp.server.auth import RemoteAuthProvider
from fastmcp.server.dependencies import get_access_token
from fastmcp.utilities import token_cache

SERVER = Path(__file__).resolve().parent.parent / "server.py"


def undo_tools(server: dict) -> None:
    """The same tools as server.py's, as sync functions (what most FastMCP examples write)."""

    def greet(name: str) -> str:
        """Greet someone by name."""
        return f"Hello, {name}!"

    def whoami() -> dict:
        """Your token's subject and scopes, as the server sees them."""
        token = get_access_token()
        return {"subject": token.subject, "scopes": token.scopes}

    def server_config() -> dict:
        """The server's token rules. Needs the scopes read and admin."""
        issuer, audience = server["config"].issuer, server["PUBLIC_URL"]
        return {"issuer": issuer, "audience": audience, "scope": server["BASE_SCOPE"]}

    mcp = server["mcp"]
    for tool in (greet, whoami, server_config):
        mcp.local_provider.remove_tool(tool.__name__)  # FastMCP 4: tools live in a provider
    mcp.tool(greet)
    mcp.tool(whoami)
    mcp.tool(server_config)  # server.py's StepUp guards it by name


def undo_json(server: dict) -> None:
    settings.json_response = False  # read when the app is built, which is after this


def undo_gc(server: dict) -> None:
    gc.unfreeze()  # server.py froze its import-time objects and raised gen 0's threshold
    gc.set_threshold(700, 10, 10)


def undo_telemetry(server: dict) -> None:
    settings.telemetry_mode = "native"  # read on every request


def undo_stepup(server: dict) -> None:
    auth = server["auth"]  # FastMCP asks it for its middleware when it builds the app, later
    auth.get_middleware = partial(RemoteAuthProvider.get_middleware, auth)


def undo_cache() -> None:
    class NoCache(token_cache.TokenCache):  # ttl 0: FastMCP's own way to disable its cache
        def __init__(self, **kwargs) -> None:
            super().__init__(**{**kwargs, "ttl_seconds": 0})

    token_cache.TokenCache = NoCache  # before server.py's `from ... import TokenCache`


def undo_h11() -> None:
    # server.py passes uvicorn_config={"http": "h11", ...}; FastMCP builds uvicorn.Config(app, ...)
    # with it. bench/headers.py measures what h11 protects against.
    config = uvicorn.Config

    def with_httptools(app, **kwargs):
        return config(app, **{**kwargs, "http": "httptools"})

    uvicorn.Config = with_httptools


BEFORE_IMPORT = {"cache": undo_cache, "h11": undo_h11}
BEFORE_SERVING = {  # server.py's globals are set here
    "tools": undo_tools,
    "json": undo_json,
    "gc": undo_gc,
    "telemetry": undo_telemetry,
    "stepup": undo_stepup,
}
UNDO = ["json", "tools", "uvloop", "cache", "h11", "gc", "telemetry", "stepup"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--undo", choices=UNDO)
    args, rest = parser.parse_known_args()
    if args.undo is None:
        sys.exit(f"Error: --undo {'|'.join(UNDO)} is required")
    if args.undo in BEFORE_IMPORT:
        BEFORE_IMPORT[args.undo]()
    run = anyio.run

    def serve(func, *func_args, backend_options=None, **kwargs):
        # server.py's last line, `anyio.run(...)`: its module (runpy's __main__) is complete here.
        if args.undo in BEFORE_SERVING:
            BEFORE_SERVING[args.undo](vars(sys.modules["__main__"]))
        if args.undo == "uvloop":
            backend_options = None  # anyio's asyncio backend, on the standard event loop
        return run(func, *func_args, backend_options=backend_options, **kwargs)

    anyio.run = serve
    sys.argv = [str(SERVER), *rest]  # every other flag is server.py's
    runpy.run_path(str(SERVER), run_name="__main__")


if __name__ == "__main__":
    main()
