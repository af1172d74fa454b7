"""What does server.py cost per call, against the official MCP SDK's own server and a bare FastMCP
server, and what is each of its speed choices worth? One run, one machine, every server measured
in the same rounds, so their ratios hold even where the absolute figures drift.

Servers (each its own process on a free port of 127.0.0.1):

- ours: server.py as shipped; the SDK's `MCPServer` with a PyJWT verifier (bench/sdk_server.py);
  a bare FastMCP with no auth and every default (bench/bare.py);
- ours with one choice undone (bench/variant.py): SSE answers instead of JSON, sync tools,
  asyncio's loop, no token cache, CPython's default GC, FastMCP's telemetry on; and without the
  step-up check, a rule, to show what it costs.

Workloads, each `tools/call greet` over 10 kept-open HTTP connections, one request in flight on
each, both measured in the same rounds:

- sessionless 2026-07-28: every POST a whole request, as fastmcp 4's `Client` sends them (the
  protocol version, method and tool name in headers and in `_meta`), no session;
- handshake sessions: `initialize` (2025-11-25) and `notifications/initialized` once per
  connection, then calls with the `mcp-session-id` when the server gave one (ours gives none:
  it is stateless, so it handles each of these calls as a request of its own).

Server CPU comes from the server process's own accounting (/proc/PID/stat: Linux only).

    uv run bench/bench.py            # about 7 minutes on 2 cores
    uv run bench/bench.py --quick    # a smoke run: few rounds and calls, under a minute
"""

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
READY = "Uvicorn running on"  # the server listens: uvicorn's own line
TICKS = os.sysconf("SC_CLK_TCK")  # /proc/PID/stat counts CPU time in these
CONNECTIONS = 10  # per server and workload, each with one request in flight
START_TIMEOUT = 120  # seconds for every server to listen: 7 imports of FastMCP share 2 cores
REQUEST_TIMEOUT = 30  # seconds, for any one request
ROUND_TIMEOUT = 600  # seconds, for one server's share of a round on one workload
TOKEN = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")  # what --print-token must print

OURS, SDK, BARE = "ours (server.py)", "MCP SDK MCPServer + PyJWT", "bare FastMCP (no auth)"
SDK_ASYNC = f"{SDK}, async tool"
VARIANT = [str(ROOT / "bench" / "variant.py"), "--undo"]
SERVERS = {  # row label: script and its flags
    OURS: [str(ROOT / "server.py")],
    SDK: [str(ROOT / "bench" / "sdk_server.py")],
    BARE: [str(ROOT / "bench" / "bare.py")],
    SDK_ASYNC: [str(ROOT / "bench" / "sdk_server.py"), "--async-tool"],
    "ours, SSE answers": [*VARIANT, "json"],
    "ours, sync tools": [*VARIANT, "tools"],
    "ours, asyncio loop": [*VARIANT, "uvloop"],
    "ours, no token cache": [*VARIANT, "cache"],
    "ours, default GC": [*VARIANT, "gc"],
    "ours, telemetry on": [*VARIANT, "telemetry"],
    "ours, no step-up check": [*VARIANT, "stepup"],
}

SESSIONLESS, HANDSHAKE = "sessionless 2026-07-28", "handshake sessions"
MODERN, LEGACY = "2026-07-28", "2025-11-25"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
# What fastmcp 4.2.3's Client sends (captured): the protocol in headers and in `_meta`, its
# log level opt-in ("debug", its default) and a progress token, the request's id.
MODERN_HEADERS = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "greet"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/logLevel": "debug",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def greet(workload: str, request_id: int) -> bytes:
    params = {"name": "greet", "arguments": {"name": "bench"}}
    if workload == SESSIONLESS:
        params["_meta"] = {**MODERN_META, "progressToken": request_id}
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Figures:
    """One server on one workload."""

    connections: list = field(default_factory=list)  # (http client, headers), one per connection
    calls: int = 0
    wall: float = 0.0  # seconds spent in measured rounds
    cpu: float = 0.0  # server CPU seconds spent in measured rounds
    latencies: list = field(default_factory=list)


@dataclass
class Server:
    label: str
    port: int
    proc: subprocess.Popen
    log: Path
    token: str = ""
    figures: dict = field(default_factory=lambda: {SESSIONLESS: Figures(), HANDSHAKE: Figures()})
    rss: float = 0.0  # MB, after the run

    @property
    def url(self) -> str:  # the server's own URL: the audience its tokens are minted for
        return f"http://localhost:{self.port}/mcp"

    @property
    def target(self) -> str:  # where requests go: 127.0.0.1, no resolver and no IPv6 attempt
        return f"http://127.0.0.1:{self.port}/mcp"

    def cpu_seconds(self) -> float:
        # Fields after the command name (which may hold spaces); utime and stime are 14th, 15th.
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024


def clean_environment() -> dict:
    """The caller's environment without FASTMCP_* and MCP_* settings: a variable left in a shell
    (FASTMCP_STATELESS_HTTP, MCP_PUBLIC_KEY, ...) would change what a server is."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("FASTMCP_", "MCP_"))}


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all different (held open together while chosen)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def run(command: list[str]) -> str:
    """What `command` printed; its error output in full if it failed."""
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=clean_environment(),
        check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"Error: {' '.join(command)}:\n{done.stdout}{done.stderr}")
    return done.stdout


def start_all(servers: list[Server], folder: Path) -> None:
    """Start every server at once (their imports overlap), mint each one's token meanwhile and
    wait until each listens. Each joins `servers` as soon as it runs, so the caller's `finally`
    stops it whatever happens."""
    public_key, private_key = folder / "public.pem", folder / "private.pem"
    for (label, script), port in zip(SERVERS.items(), free_ports(len(SERVERS)), strict=True):
        log = folder / f"server{len(servers)}.log"  # a file: a full pipe would stall the server
        command = [sys.executable, *script, "--port", str(port), "--public-key", str(public_key)]
        with log.open("w") as out:
            proc = subprocess.Popen(
                command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=clean_environment()
            )
        servers.append(Server(label, port, proc, log))
    mint = [sys.executable, str(ROOT / "client.py"), "--print-token", "--expires-in", "3600"]
    for srv in servers:  # the bare server checks no token; it ignores the header
        token = run([*mint, "--url", srv.url, "--private-key", str(private_key)]).strip()
        if not TOKEN.match(token):
            raise SystemExit(f"Error: --print-token printed {token[:80]!r}")
        srv.token = token
    deadline = time.monotonic() + START_TIMEOUT
    for srv in servers:
        while READY not in srv.log.read_text(errors="replace"):
            if srv.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Error: {srv.label} did not start:\n{srv.log.read_text()}")
            time.sleep(0.05)


async def connect(srv: Server, workload: str) -> None:
    """CONNECTIONS kept-open HTTP connections; on HANDSHAKE, an MCP session opened on each."""
    for _ in range(CONNECTIONS):
        http = httpx2.AsyncClient(
            timeout=REQUEST_TIMEOUT,
            trust_env=False,  # never through an HTTP proxy from the environment
            # uvicorn drops an idle connection after 5 s (while other servers take their turn):
            # let the client forget it first, rather than race the server's close.
            limits=httpx2.Limits(max_connections=1, keepalive_expiry=4),
        )
        headers = {**HEADERS, "Authorization": f"Bearer {srv.token}"}
        srv.figures[workload].connections.append((http, headers))  # closed in load()'s finally
        if workload == SESSIONLESS:
            headers.update(MODERN_HEADERS)
            continue
        answer = await http.post(srv.target, json=INITIALIZE, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"Error: {srv.label} refused initialize: {answer.status_code}")
        if session := answer.headers.get("mcp-session-id"):  # none when stateless
            headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = LEGACY  # what a client sends after the handshake
        answer = await http.post(srv.target, json=INITIALIZED, headers=headers)
        if answer.status_code != 202:
            raise SystemExit(f"Error: {srv.label} refused initialized: {answer.status_code}")


async def drive(srv: Server, workload: str, calls: int, measured: bool = True) -> None:
    """`calls` tools/call requests spread over the workload's connections, one in flight on each."""
    figures, latencies = srv.figures[workload], []

    async def connection(http: httpx2.AsyncClient, headers: dict, count: int) -> None:
        for request_id in range(1, count + 1):
            body = greet(workload, request_id)
            sent = time.perf_counter()
            answer = await http.post(srv.target, content=body, headers=headers)
            latencies.append(time.perf_counter() - sent)
            if answer.status_code != 200 or "Hello, bench!" not in answer.text:
                raise SystemExit(f"Error: {srv.label}: {answer.status_code} {answer.text[:200]}")

    each = calls // len(figures.connections)
    cpu, began = srv.cpu_seconds(), time.perf_counter()
    work = asyncio.gather(*(connection(http, h, each) for http, h in figures.connections))
    await asyncio.wait_for(work, ROUND_TIMEOUT)
    if measured:
        figures.wall += time.perf_counter() - began
        figures.cpu += srv.cpu_seconds() - cpu
        figures.calls += each * len(figures.connections)
        figures.latencies += latencies


def order(servers: list, round_number: int) -> list:
    """Rotate the order each round, so each server goes first as often as the others (going first
    costs a few percent); every second lap runs backwards, so none always follows the same one."""
    n = len(servers)
    turn = servers[round_number % n :] + servers[: round_number % n]
    return turn[::-1] if (round_number // n) % 2 else turn


async def load(servers: list[Server], rounds: int, calls: int, warmup: int) -> None:
    workloads = [SESSIONLESS, HANDSHAKE]
    try:
        for srv in servers:
            for workload in workloads:
                await connect(srv, workload)
                await drive(srv, workload, warmup, measured=False)  # imports, caches, 1st token
        for i in range(rounds):
            for workload in workloads if i % 2 == 0 else workloads[::-1]:  # each first in turn
                for srv in order(servers, i):
                    await drive(srv, workload, calls)
    finally:
        for srv in servers:
            for figures in srv.figures.values():
                for http, _ in figures.connections:
                    await http.aclose()


def machine() -> str:
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    names = ("fastmcp", "mcp", "uvicorn", "uvloop")
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)
    return (
        f"Machine: {os.cpu_count()} cores, {model[1] if model else platform.machine()}, "
        f"Python {platform.python_version()}, {versions}"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def per_call(srv: Server, workload: str) -> float:
    """Server CPU µs per call."""
    figures = srv.figures[workload]
    return 1e6 * figures.cpu / figures.calls


def report(servers: list[Server], rounds: int, calls: int) -> None:
    print(machine())
    print(
        f"Load: tools/call greet, {CONNECTIONS} kept-open HTTP connections per server and "
        f"workload (one request in flight each), {rounds} rounds of {calls} calls per server "
        f"and workload, the server order rotated each round"
    )
    by_label = {srv.label: srv for srv in servers}
    for workload in (SESSIONLESS, HANDSHAKE):
        ours = per_call(by_label[OURS], workload)
        print(f"\n{workload}:\n")
        print("| server | CPU µs/call | × ours | req/s | p50 ms | p99 ms | RSS MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for srv in servers:
            figures = srv.figures[workload]
            cells = [
                srv.label,
                f"{per_call(srv, workload):.0f}",
                f"{per_call(srv, workload) / ours:.3f}",
                f"{figures.calls / figures.wall:.0f}",
                f"{1000 * percentile(figures.latencies, 0.50):.2f}",
                f"{1000 * percentile(figures.latencies, 0.99):.2f}",
                f"{srv.rss:.0f}",
            ]
            print("| " + " | ".join(cells) + " |")
    print()
    for other, workload in (
        (SDK, SESSIONLESS),
        (SDK, HANDSHAKE),
        (SDK_ASYNC, SESSIONLESS),
        (SDK_ASYNC, HANDSHAKE),
        (BARE, SESSIONLESS),
    ):
        ratio = per_call(by_label[OURS], workload) / per_call(by_label[other], workload)
        print(f"ours ÷ {other}, {workload}: {ratio:.3f}")
    for other in (SDK, SDK_ASYNC):
        ours, theirs = (by_label[label].figures[SESSIONLESS].latencies for label in (OURS, other))
        ratio = percentile(ours, 0.99) / percentile(theirs, 0.99)
        print(f"ours ÷ {other}, p99, {SESSIONLESS}: {ratio:.3f}")


def print_token_cost(folder: Path, pairs: int) -> None:
    """`client.py --print-token` runs for every connection a tool makes (an editor's
    headersHelper, curl's `$(...)`): its whole-process time against `import jwt` alone, in
    alternating pairs, each pair's ratio, the median printed."""
    mint = [sys.executable, str(ROOT / "client.py"), "--print-token"]
    mint += ["--private-key", str(folder / "private.pem")]
    bare = [sys.executable, "-c", "import jwt"]
    ratios = []
    for _ in range(pairs):
        seconds = []
        for command in (mint, bare):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, timeout=60)
            seconds.append(time.perf_counter() - started)
        ratios.append(seconds[0] / seconds[1])
    median = sorted(ratios)[len(ratios) // 2]
    label = "client.py --print-token ÷ python -c 'import jwt', whole process"
    print(f"{label}, median of {pairs} pairs: {median:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    args = parser.parse_args()
    # Full: every server first twice, both directions of the rotation.
    rounds, calls, warmup = (2, 100, 50) if args.quick else (2 * len(SERVERS), 500, 300)
    for stop in (signal.SIGTERM, signal.SIGHUP):  # as Ctrl-C does: the `finally` below runs
        signal.signal(stop, lambda number, frame: sys.exit(f"Error: stopped by signal {number}"))
    servers: list[Server] = []
    with tempfile.TemporaryDirectory() as name:  # removed afterwards, private key and all
        folder = Path(name)
        run([sys.executable, str(ROOT / "__main__.py"), "keygen", "--dir", str(folder)])
        try:
            start_all(servers, folder)
            gc.collect()  # the load generator's own full collections (~50 ms) would land in the
            gc.freeze()  # servers' latencies: its import-time objects are not walked again
            asyncio.run(load(servers, rounds, calls, warmup))
            for srv in servers:
                srv.rss = srv.rss_mb()
        finally:  # every server stops, whatever happened
            for srv in servers:
                srv.proc.terminate()
            for srv in servers:
                try:
                    srv.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    srv.proc.kill()
                    srv.proc.wait(timeout=10)
        report(servers, rounds, calls)
        print()
        print_token_cost(folder, 3 if args.quick else 15)


if __name__ == "__main__":
    main()
