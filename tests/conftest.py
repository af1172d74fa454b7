"""Shared fixtures: a key pair in a temporary folder, the real server on a free loopback port,
and helpers to mint tokens and send raw MCP requests to it.

Two suites: the default one needs Python alone; `pytest --real` runs the tests marked `real`,
which start real components (nginx, oidc-provider, the MCP Inspector, a fresh uv project). A
real component that is missing skips its test, saying how to install it, except under CI=true,
where it fails the run."""

import asyncio
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastmcp import Client
from jwt.algorithms import RSAAlgorithm

from fastmcp_auth.__main__ import free_port, write_keys

# server.py loads its public key as it is imported (tests import it, and the subprocesses they
# start inherit this): a key pair of this test run's own, removed at the end.
KEYS = Path(tempfile.mkdtemp(prefix="fastmcp-auth-keys-"))
write_keys(KEYS / "private.pem", KEYS / "public.pem")
os.environ["MCP_PUBLIC_KEY"] = str(KEYS / "public.pem")

from fastmcp_auth import client, server  # noqa: E402 -- after the key it loads

ROOT = Path(server.__file__).resolve().parent
BANNER = re.compile(r"Starting FastMCP server on (https?://[^/]+:(\d+)/mcp)")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "tests", "version": "0"},
    },
}
READY = "Uvicorn running on"
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def pytest_addoption(parser):
    parser.addoption(
        "--real",
        action="store_true",
        help="run the real-component tests (nginx, oidc-provider, Node.js tools) instead",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "real: starts a real component; runs with --real")


def pytest_collection_modifyitems(config, items):
    real = config.getoption("--real")
    chosen = [item for item in items if ("real" in item.keywords) == real]
    config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
    items[:] = chosen


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(KEYS, ignore_errors=True)


def unavailable(what: str, install: str) -> None:
    """A real component is missing: the test skips and says how to install it; in CI, where
    .ci/run installs everything, it fails instead."""
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{what}, and CI should have it ({install})")
    pytest.skip(f"{what}: {install}")


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_once_it_says(self, text: str, seconds: float = 5) -> str:
        """The log, once `text` is in it or `seconds` have passed: lines come after answers."""
        deadline = time.monotonic() + seconds
        while text not in self.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.log()

    def post(self, token: str | None = None, headers: dict | None = None, **kw) -> httpx.Response:
        """POST an MCP `initialize` to the server, with `Authorization: Bearer <token>` if given."""
        sent = dict(MCP_HEADERS)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        return httpx.post(self.url, json=INITIALIZE, headers=sent, timeout=10, **kw)


@contextmanager
def running(args: list[str], log_path: Path, cwd: Path = ROOT, env=None) -> Iterator[Server]:
    """Start a server command, wait for its banner, and stop it afterwards."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env
        )
    try:
        deadline = time.monotonic() + 60
        # The banner comes first, then uvicorn binds the port and says so.
        while not (banner := BANNER.search(log := log_path.read_text())) or READY not in log:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start (exit {proc.poll()}):\n{log_path.read_text()}")
            time.sleep(0.05)
        yield Server(proc, banner[1], int(banner[2]), log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(*args: str, log_path: Path, env=None) -> Iterator[Server]:
    """server.py on a free port of 127.0.0.1 with `args`, as a user runs it."""
    command = [sys.executable, str(ROOT / "server.py"), "--port", str(free_port()), *args]
    return running(command, log_path, env=env)


def call(url: str, token: str, tool: str | None = None, **arguments):
    """As an MCP client holding `token`: the tool names (no `tool`), or what `tool` returns."""

    async def go():
        async with Client(url, auth=token) as mcp:
            if tool is None:
                return [t.name for t in await mcp.list_tools()]
            return (await mcp.call_tool(tool, arguments)).data

    return asyncio.run(go())


def run(args: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run a command to completion and capture its output as text."""
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, **kw
    )


def run_client(keys: Path, *args: str) -> subprocess.CompletedProcess:
    """Run client.py with the private key in `keys`."""
    command = [sys.executable, str(ROOT / "client.py"), "--private-key", str(keys / "private.pem")]
    return run([*command, *args], env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def client_py(*args: str, env: dict | None = None, timeout: float = 120):
    """Run client.py with `args` and no MCP_CLIENT_SECRET but the one `env` may add."""
    clean = {k: v for k, v in os.environ.items() if k != "MCP_CLIENT_SECRET"}
    command = [sys.executable, str(ROOT / "client.py"), *args]
    return run(command, env={**clean, "PYTHONIOENCODING": "utf-8", **(env or {})}, timeout=timeout)


def p256_key(folder: Path) -> Path:
    """A P-256 key pair in `folder`: ec.pem, the private key (PKCS#8), and ec.pub.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "ec.pub.pem").write_bytes(public)
    (folder / "ec.pem").write_bytes(private)
    return folder / "ec.pem"


def print_token(keys: Path, url: str, *args: str) -> str:
    """A token from `client.py --print-token` for `url`."""
    result = run_client(keys, "--url", url, "--print-token", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def refusal(script: str, *args: str, env: dict | None = None) -> str:
    """The one line `python SCRIPT ARGS` exits with, run in this process (a second instead of a
    whole interpreter's start): server.py and client.py check their settings and keys before
    they serve or connect, and exit with `Error: ...`."""

    def no_serving(*args, **kwargs):
        raise AssertionError(f"{script} {' '.join(args)} started instead of refusing")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [str(ROOT / script), *args])
        patch.setattr("anyio.run", no_serving)
        patch.setattr("asyncio.run", no_serving)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(ROOT / script), run_name="__main__")
    message = exited.value.code
    assert isinstance(message, str) and len(message.splitlines()) == 1, message
    return message


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single line a failed command printed; fails if it printed a traceback or more."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


class JwksHost:
    """A JWKS document served on loopback, as an identity provider serves its keys: publish()
    replaces what it serves; `fetches` counts the GETs."""

    def __init__(self) -> None:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host.fetches += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(host.body)

            def log_message(self, *args):
                pass

        self.fetches, self.body = 0, b'{"keys": []}'
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, *keys) -> None:
        """Serve the public halves of `keys`: (kid, private key) pairs."""
        jwks = [{**json.loads(RSAAlgorithm.to_jwk(k.public_key())), "kid": kid} for kid, k in keys]
        self.body = json.dumps({"keys": jwks}).encode()


@pytest.fixture(scope="session")
def keys() -> Path:
    """A folder holding private.pem and public.pem, made for this test run."""
    return KEYS


@pytest.fixture(scope="session")
def private_key(keys):
    return (keys / "private.pem").read_bytes()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[Server]:
    """server.py, run as a user runs it, on a free port of 127.0.0.1."""
    with serve(log_path=tmp_path_factory.mktemp("server") / "server.log") as srv:
        yield srv


@pytest.fixture(scope="session")
def claims(live_server):
    """claims(**changes) -> the claims of a token the live server accepts, with `changes` applied
    (a value of None removes the claim)."""

    def claims(**changes) -> dict:
        now = int(time.time())
        valid = {
            "sub": client.SUBJECT,
            "iss": client.ISSUER,
            "aud": live_server.url,
            "iat": now,
            "exp": now + 300,
            "scope": client.SCOPES,
        }
        valid.update(changes)
        return {name: value for name, value in valid.items() if value is not None}

    return claims


@pytest.fixture(scope="session")
def mint(private_key, claims):
    """mint(**changes) -> a signed token with claims(**changes); `key`, `algorithm` and `headers`
    go to PyJWT. Every token minted is kept in `mint.issued`, to look for in the server's log."""

    def mint(key=private_key, algorithm="RS256", headers=None, **changes) -> str:
        token = jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)
        mint.issued.append(token)
        return token

    mint.issued = []
    return mint
