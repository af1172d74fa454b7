"""Shared fixtures: a key pair in a temporary folder, the real server on an ephemeral loopback
port, and helpers to mint tokens and send raw MCP requests to it."""

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
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
from fastmcp import Client
from jwt.algorithms import RSAAlgorithm

from fastmcp_auth import client, server
from fastmcp_auth.__main__ import write_keys

ROOT = Path(server.__file__).resolve().parent
BANNER = re.compile(r"Starting FastMCP server on (https?://[^:/]+:(\d+)/mcp)")
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
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


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
        while not (banner := BANNER.search(log_path.read_text())):
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


def free_port() -> int:
    """A port nothing listens on now, for a server that must be told its port in advance."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def run_client(keys: Path, *args: str, encoding: str = "utf-8") -> subprocess.CompletedProcess:
    """Run client.py with the private key in `keys`, its stdout encoded as `encoding`."""
    command = [sys.executable, str(ROOT / "client.py"), "--private-key", str(keys / "private.pem")]
    return run([*command, *args], env={**os.environ, "PYTHONIOENCODING": encoding})


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


@pytest.fixture
def jwks_host() -> Iterator[JwksHost]:
    host = JwksHost()
    yield host
    host.httpd.shutdown()


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> Path:
    """A folder holding private.pem and public.pem, made for this test run."""
    folder = tmp_path_factory.mktemp("keys")
    write_keys(folder / "private.pem", folder / "public.pem")
    return folder


@pytest.fixture(scope="session")
def private_key(keys):
    return client.load_private_key(keys / "private.pem")


@pytest.fixture(scope="session")
def live_server(keys, tmp_path_factory) -> Iterator[Server]:
    """server.py, run as a user runs it, on a free port of 127.0.0.1."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    args = [sys.executable, str(ROOT / "server.py"), "--port", "0"]
    with running([*args, "--public-key", str(keys / "public.pem")], log_path) as srv:
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
