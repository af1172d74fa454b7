"""What does server.py cost per call, against the official MCP SDK's own server and a bare FastMCP
server, and what is each of its speed choices worth? One run, one machine, every server measured
in the same rounds, so their ratios hold even where the absolute figures drift.

Servers (each its own process on a free port of 127.0.0.1):

- ours: server.py as shipped; the SDK's `MCPServer` with a PyJWT verifier (bench/sdk_server.py);
  a bare FastMCP with no auth and its defaults (bench/bare.py);
- ours with one choice undone (bench/variant.py): sync tools, telemetry on, asyncio's loop;
- ours stateless (FASTMCP_STATELESS_HTTP=true) and ours with --json-response.

Load: `tools/call greet` over kept-open MCP sessions, one request in flight per session. Server
CPU comes from the server process's own accounting (/proc/PID/stat: Linux only). Then whole
processes: `client.py --print-token` against `python -c "import jwt"`.

    uv run bench/bench.py            # several minutes on 2 cores
    uv run bench/bench.py --quick    # a smoke run: few rounds and calls, under a minute
"""

import argparse
import asyncio
import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from fastmcp_auth import client
from fastmcp_auth.__main__ import write_keys

ROOT = Path(__file__).resolve().parent.parent
BANNER = re.compile(r"Starting FastMCP server on (http://localhost:(\d+)/mcp)")
TICKS = os.sysconf("SC_CLK_TCK")  # /proc/PID/stat counts CPU time in these
CONCURRENCY = 10  # sessions, each with one request in flight
REQUEST_TIMEOUT = 30  # seconds, for any one request
ROUND_TIMEOUT = 600  # seconds, for one server's share of a round
TOKEN = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")  # what --print-token must print

OURS, SDK, BARE = "ours (server.py)", "MCP SDK MCPServer + PyJWT", "bare FastMCP, no auth"
VARIANT = [str(ROOT / "bench" / "variant.py"), "--undo"]
SERVERS = {  # row label: (script and its flags, environment added)
    OURS: ([str(ROOT / "server.py")], {}),
    SDK: ([str(ROOT / "bench" / "sdk_server.py")], {}),
    BARE: ([str(ROOT / "bench" / "bare.py")], {}),
    "ours, sync tools": ([*VARIANT, "tools"], {}),
    "ours, telemetry on": ([*VARIANT, "telemetry"], {}),
    "ours, asyncio loop": ([*VARIANT, "uvloop"], {}),
    "ours, stateless": ([str(ROOT / "server.py")], {"FASTMCP_STATELESS_HTTP": "true"}),
    "ours, --json-response": ([str(ROOT / "server.py"), "--json-response"], {}),
}

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def greet(request_id: int) -> dict:
    params = {"name": "greet", "arguments": {"name": "bench"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


@dataclass
class Server:
    label: str
    proc: subprocess.Popen
    log: Path
    url: str = ""  # the banner's URL: the audience our tokens are minted for
    target: str = ""  # where requests go: 127.0.0.1, no resolver and no IPv6 attempt
    sessions: list = field(default_factory=list)  # (http client, headers), one per session
    calls: int = 0
    wall: float = 0.0  # seconds spent in measured rounds
    cpu: float = 0.0  # server CPU seconds spent in measured rounds
    latencies: list = field(default_factory=list)

    def cpu_seconds(self) -> float:
        # Fields after the command name (which may hold spaces); utime and stime are 14th, 15th.
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024


def clean_environment() -> dict:
    """The caller's environment without FASTMCP_* and MCP_* settings: a variable left in a shell
    (FASTMCP_STATELESS_HTTP, MCP_JSON_RESPONSE, ...) would change what "ours" means."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("FASTMCP_", "MCP_"))}


def start_all(servers: list[Server], folder: Path, public_key: Path) -> None:
    """Start every server at once (their imports overlap) and wait for each one's banner. Each
    joins `servers` as soon as it runs, so the caller's `finally` stops it whatever happens."""
    for label, (script, env) in SERVERS.items():
        log = folder / f"server{len(servers)}.log"  # a file: a full pipe would stall the server
        command = [sys.executable, *script, "--port", "0", "--public-key", str(public_key)]
        with log.open("w") as out:
            proc = subprocess.Popen(
                command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**clean_environment(), **env},
            )  # fmt: skip
        servers.append(Server(label, proc, log))
    deadline = time.monotonic() + 120  # 8 imports of FastMCP share 2 cores
    for srv in servers:
        while not (banner := BANNER.search(srv.log.read_text(errors="replace"))):
            if srv.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Error: {srv.label} did not start:\n{srv.log.read_text()}")
            time.sleep(0.05)
        srv.url = banner[1]
        srv.target = srv.url.replace("//localhost:", "//127.0.0.1:")  # every server allows it


async def open_sessions(srv: Server, token: str) -> None:
    """CONCURRENCY MCP sessions, each on its own HTTP connection, kept for the whole run."""
    for _ in range(CONCURRENCY):
        http = httpx2.AsyncClient(
            timeout=REQUEST_TIMEOUT,
            trust_env=False,  # never through an HTTP proxy from the environment
            # uvicorn drops an idle connection after 5 s (while other servers take their turn):
            # let the client forget it first, rather than race the server's close.
            limits=httpx2.Limits(max_connections=1, keepalive_expiry=4),
        )
        # The bare server checks no token; it ignores the header, so everyone gets one.
        headers = {**HEADERS, "Authorization": f"Bearer {token}"}
        srv.sessions.append((http, headers))  # closed in the finally, even if the next fails
        answer = await http.post(srv.target, json=INITIALIZE, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"Error: {srv.label} refused initialize: {answer.status_code}")
        if session := answer.headers.get("mcp-session-id"):  # none when stateless
            headers["mcp-session-id"] = session
            await http.post(srv.target, json=INITIALIZED, headers=headers)


async def drive(srv: Server, calls: int, measured: bool = True) -> None:
    """`calls` tools/call requests spread over srv's sessions, one in flight per session."""
    latencies = []

    async def session(http: httpx2.AsyncClient, headers: dict, count: int) -> None:
        for request_id in range(1, count + 1):
            sent = time.perf_counter()
            answer = await http.post(srv.target, json=greet(request_id), headers=headers)
            latencies.append(time.perf_counter() - sent)
            if answer.status_code != 200 or "Hello, bench!" not in answer.text:
                raise SystemExit(f"Error: {srv.label}: {answer.status_code} {answer.text[:200]}")

    each = calls // len(srv.sessions)
    cpu, began = srv.cpu_seconds(), time.perf_counter()
    work = asyncio.gather(*(session(http, headers, each) for http, headers in srv.sessions))
    await asyncio.wait_for(work, ROUND_TIMEOUT)
    if measured:
        srv.wall += time.perf_counter() - began
        srv.cpu += srv.cpu_seconds() - cpu
        srv.calls += each * len(srv.sessions)
        srv.latencies += latencies


def order(servers: list, round_number: int) -> list:
    """Rotate the order each round, so each server goes first as often as the others (going first
    costs a few percent); every second lap runs backwards, so none always follows the same one."""
    n = len(servers)
    turn = servers[round_number % n :] + servers[: round_number % n]
    return turn[::-1] if (round_number // n) % 2 else turn


async def load(servers: list[Server], token_for, rounds: int, calls: int, warmup: int) -> None:
    try:
        for srv in servers:
            await open_sessions(srv, token_for(srv.url))
            await drive(srv, warmup, measured=False)  # first token check, imports, caches
        for i in range(rounds):
            for srv in order(servers, i):
                await drive(srv, calls)
    finally:
        for srv in servers:
            for http, _ in srv.sessions:
                await http.aclose()


def timed(command: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return time.perf_counter() - began, done.stdout


def whole_processes(url: str, private_key: Path, runs: int) -> tuple[float, float]:
    """Median seconds of `client.py --print-token` and of `python -c "import jwt"`, alternating
    which runs first: the token needs PyJWT and the key, and should cost little more."""
    print_token = [sys.executable, str(ROOT / "client.py"), "--print-token", "--url", url]
    print_token += ["--private-key", str(private_key)]
    import_jwt = [sys.executable, "-c", "import jwt"]
    times = {"token": [], "jwt": []}
    for i in range(runs):
        for name in ("token", "jwt") if i % 2 == 0 else ("jwt", "token"):
            seconds, out = timed(print_token if name == "token" else import_jwt)
            if name == "token" and not TOKEN.match(out.strip()):
                raise SystemExit(f"Error: --print-token printed {out[:80]!r}")
            times[name].append(seconds)
    return statistics.median(times["token"]), statistics.median(times["jwt"])


def machine() -> str:
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("fastmcp", "mcp", "uvicorn")
    )
    return (
        f"Machine: {os.cpu_count()} cores, {model[1] if model else platform.machine()}, "
        f"Python {platform.python_version()}, {versions}"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def report(servers: list[Server], rss: dict, rounds: int, calls: int, times: tuple) -> None:
    print(machine())
    print(
        f"Load: tools/call greet, {CONCURRENCY} kept-open sessions (one request in flight each), "
        f"{rounds} rounds of {calls} calls per server, the order rotated each round\n"
    )
    per_call = {srv.label: 1e6 * srv.cpu / srv.calls for srv in servers}
    print("| server | CPU µs/call | × ours | req/s | p50 ms | p99 ms | RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for srv in servers:
        cells = [
            srv.label,
            f"{per_call[srv.label]:.0f}",
            f"{per_call[srv.label] / per_call[OURS]:.3f}",
            f"{srv.calls / srv.wall:.0f}",
            f"{1000 * percentile(srv.latencies, 0.50):.2f}",
            f"{1000 * percentile(srv.latencies, 0.99):.2f}",
            f"{rss[srv.label]:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    # The two must-show figures, spelled out.
    for other, target in ((SDK, 0.95), (BARE, 0.85)):
        ratio = per_call[OURS] / per_call[other]
        verdict = "met" if ratio <= target else "MISSED"
        print(f"\nours ÷ {other}, CPU per call: {ratio:.3f} (target ≤ {target}: {verdict})", end="")
    token, jwt_import = times
    print("\n\n| whole process, median of alternating runs | seconds | × import jwt |")
    print("|---|---:|---:|")
    print(f'| `python -c "import jwt"` | {jwt_import:.3f} | 1.000 |')
    print(f"| `python client.py --print-token` | {token:.3f} | {token / jwt_import:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    args = parser.parse_args()
    # Full: 16 rounds = every server first twice (8 servers), both directions of the rotation.
    rounds, calls, warmup, runs = (2, 60, 30, 2) if args.quick else (16, 1000, 300, 7)
    with tempfile.TemporaryDirectory() as name:  # removed afterwards, private key and all
        folder = Path(name)
        private_key, public_key = folder / "private.pem", folder / "public.pem"
        write_keys(private_key, public_key)
        key = client.load_private_key(private_key)

        def token_for(url: str) -> str:  # each server's own URL is its audience
            return client.mint_token(key, url, "read write", 3600)

        servers: list[Server] = []
        try:
            start_all(servers, folder, public_key)
            asyncio.run(load(servers, token_for, rounds, calls, warmup))
            rss = {srv.label: srv.rss_mb() for srv in servers}
        finally:  # every server stops, whatever happened
            for srv in servers:
                srv.proc.terminate()
            for srv in servers:
                try:
                    srv.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    srv.proc.kill()
                    srv.proc.wait(timeout=10)
        # After the servers stop, so that nothing else runs beside these.
        times = whole_processes(servers[0].url, private_key, runs)
    report(servers, rss, rounds, calls, times)


if __name__ == "__main__":
    main()
