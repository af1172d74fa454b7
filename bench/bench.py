"""What does JWT authentication cost? One run, one machine, every figure a ratio of two servers
measured side by side in alternating rounds:

- server.py (StrictJWTVerifier with its cache) against bench/twin.py (the same greet tool and
  settings, no auth), driving `tools/call` over kept-open MCP sessions at concurrency 1 and 20;
- server.py stateless (`FASTMCP_STATELESS_HTTP=true`) against server.py with sessions;
- server.py --json-response against server.py answering with SSE streams;
- client.py end to end against the bare `from fastmcp import Client` import;
- server.py start to first answer, and one token check by its verifier, cached and not.

Server CPU comes from the server process's own accounting (/proc/PID/stat, so Linux only). Every
request goes to 127.0.0.1, and every loop is bounded by a count.

    uv run bench/bench.py            # about two minutes on 2 cores
    uv run bench/bench.py --quick    # fewer calls, for a smoke test
"""

import argparse
import asyncio
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

import fastmcp
import httpx

from fastmcp_auth import client, server
from fastmcp_auth.__main__ import write_keys

ROOT = Path(__file__).resolve().parent.parent
BANNER = re.compile(r"Starting FastMCP server on (\S+)")
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
GREET = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
GREET["params"] = {"name": "greet", "arguments": {"name": "bench"}}
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    token: str | None
    calls: int = 0
    rounds: dict = field(default_factory=dict)  # concurrency -> [(calls, wall, cpu, latencies)]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024


def start(name: str, args: list[str], keys: Path, env: dict | None = None) -> tuple[Server, float]:
    """Start a server on a free port; return it (with a token for it, if it checks them) and
    its start-to-first-answer time."""
    log = keys / f"{name}.log"  # a file, not a pipe: the access log would fill a pipe and stall
    began = time.perf_counter()
    with log.open("w") as out:
        command = [sys.executable, *args, "--port", "0"]
        proc = subprocess.Popen(command, stdout=out, stderr=out, env={**os.environ, **(env or {})})
    for _ in range(3000):  # up to a minute
        if banner := BANNER.search(log.read_text()):
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    if banner is None:
        sys.exit(f"Error: {name} did not start:\n{log.read_text()}")
    url = banner[1]
    answer = httpx.post(url, json={}, headers=HEADERS, timeout=30)  # any answer means ready
    ready = time.perf_counter() - began
    key = client.load_private_key(keys / "private.pem")
    token = client.mint_token(key, url, client.SCOPES, 3600) if answer.status_code == 401 else None
    return Server(name, proc, url, token), ready


async def open_session(http: httpx.AsyncClient, srv: Server) -> dict:
    headers = dict(HEADERS)
    if srv.token:
        headers["Authorization"] = f"Bearer {srv.token}"
    response = await http.post(srv.url, json=INITIALIZE, headers=headers)
    response.raise_for_status()
    if session := response.headers.get("mcp-session-id"):  # none when stateless
        headers["mcp-session-id"] = session
        notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await http.post(srv.url, json=notification, headers=headers)
    return headers


async def drive(srv: Server, sessions: list, calls: int) -> None:
    """`calls` tools/call requests spread over the open sessions, one in flight per session."""
    latencies: list[float] = []

    async def worker(http, headers, count):
        for _ in range(count):
            sent = time.perf_counter()
            response = await http.post(srv.url, json=GREET, headers=headers)
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200 or "Hello, bench!" not in response.text:
                raise SystemExit(f"Error: {srv.name} answered {response.status_code}")

    per_session = calls // len(sessions)
    cpu, began = srv.cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker(http, headers, per_session) for http, headers in sessions))
    wall, cpu = time.perf_counter() - began, srv.cpu_seconds() - cpu
    done = per_session * len(sessions)
    srv.calls += done
    srv.rounds.setdefault(len(sessions), []).append((done, wall, cpu, latencies))


async def sessions_for(srv: Server, concurrency: int) -> list:
    clients = [httpx.AsyncClient(timeout=30) for _ in range(concurrency)]
    return [(http, await open_session(http, srv)) for http in clients]


async def close(*pools: list) -> None:
    for pool in pools:
        for http, _ in pool:
            await http.aclose()


def summary(srv: Server, concurrency: int) -> dict:
    rounds = srv.rounds[concurrency]
    calls = sum(r[0] for r in rounds)
    latencies = sorted(lat for r in rounds for lat in r[3])
    return {
        "requests/s": calls / sum(r[1] for r in rounds),
        "p50 ms": 1000 * latencies[len(latencies) // 2],
        "p99 ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "server CPU µs/call": 1e6 * sum(r[2] for r in rounds) / calls,
    }


async def compare(a: Server, b: Server, rounds: int, calls: int) -> dict:
    """{concurrency: (summary of a, summary of b)} from alternating rounds on kept-open sessions."""
    results = {}
    for concurrency in (1, 20):
        a.rounds.clear()
        b.rounds.clear()
        pools = {srv.name: await sessions_for(srv, concurrency) for srv in (a, b)}
        for i in range(rounds):  # alternate who goes first, so drift hits both alike
            for srv in (a, b) if i % 2 == 0 else (b, a):
                await drive(srv, pools[srv.name], calls)
        await close(*pools.values())
        results[concurrency] = (summary(a, concurrency), summary(b, concurrency))
    return results


def ratios(value: float, *bases: float) -> list[str]:
    return [f"{value / base:.3f}" for base in bases]


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |")


def print_pair(a: str, b: str, results: dict) -> None:
    for concurrency, (sa, sb) in results.items():
        print(f"\n| tools/call, concurrency {concurrency} | {a} | {b} | ratio |")
        print("|---|---:|---:|---:|")
        for metric in sa:
            row(metric, f"{sa[metric]:,.1f}", f"{sb[metric]:,.1f}", *ratios(sa[metric], sb[metric]))


async def verify_costs(keys: Path, count: int) -> tuple[float, float]:
    """Microseconds per check of one token by server.py's verifier: uncached, then cached."""
    public_pem = (keys / "public.pem").read_text()
    verifier = server.make_auth(public_pem, 8000).token_verifier
    key = client.load_private_key(keys / "private.pem")
    token = client.mint_token(key, server.mcp_url(8000), client.SCOPES, 3600)
    costs = []
    for check in (verifier.verify_uncached, verifier.load_access_token):
        began = time.perf_counter()
        for _ in range(count):
            assert await check(token) is not None
        costs.append(1e6 * (time.perf_counter() - began) / count)
    return costs[0], costs[1]


# The same session work as client.py (connect, list, two calls) with nothing but the library.
LIBRARY_FLOOR = """
import asyncio, sys
from fastmcp import Client
async def main():
    async with Client(sys.argv[1]) as mcp:
        await mcp.list_tools()
        for _ in range(2):
            await mcp.call_tool("greet", {"name": "floor"})
asyncio.run(main())
"""


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description="Measure what JWT authentication costs.")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:  # removed afterwards, private key and all
        await measure(Path(folder), args.quick)


async def measure(keys: Path, quick: bool) -> None:
    rounds, calls, rss_calls = (2, 60, 1_500) if quick else (6, 600, 10_000)
    write_keys(keys / "private.pem", keys / "public.pem")
    server_args = [str(ROOT / "server.py"), "--public-key", str(keys / "public.pem")]
    auth, ready = start("auth", server_args, keys)
    twin_args = [str(ROOT / "bench" / "twin.py"), "--public-key", str(keys / "public.pem")]
    twin, _ = start("no-auth", twin_args, keys)
    stateless, _ = start("stateless", server_args, keys, {"FASTMCP_STATELESS_HTTP": "true"})
    json_answers, _ = start("json", [*server_args, "--json-response"], keys)
    try:
        rss = {}
        for srv in (auth, twin):
            pool = await sessions_for(srv, 20)
            await drive(srv, pool, 1_000)
            rss[srv.name] = [srv.rss_mb()]
            await drive(srv, pool, rss_calls - srv.calls)
            rss[srv.name].append(srv.rss_mb())
            await close(pool)
        auth_vs_twin = await compare(auth, twin, rounds, calls)
        stateless_vs_sessions = await compare(stateless, auth, rounds, calls)
        json_vs_sse = await compare(json_answers, auth, rounds, calls)
        verify = await verify_costs(keys, 200 if quick else 2_000)

        client_py = [str(ROOT / "client.py"), "--url", auth.url]
        client_py += ["--private-key", str(keys / "private.pem")]
        runs = {"import": [], "library": [], "client": []}
        for _ in range(2 if quick else 7):  # alternating, as above
            runs["import"].append(timed([sys.executable, "-c", "from fastmcp import Client"]))
            runs["library"].append(timed([sys.executable, "-c", LIBRARY_FLOOR, twin.url]))
            runs["client"].append(timed([sys.executable, *client_py]))
    finally:
        for srv in (auth, twin, stateless, json_answers):
            srv.proc.terminate()

    cpu = platform.processor() or platform.machine()
    print(f"Machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, ", end="")
    print(f"fastmcp {fastmcp.__version__}; {rounds} alternating rounds of {calls} calls per row")
    print_pair("auth", "no-auth", auth_vs_twin)
    print_pair("auth, stateless", "auth, sessions", stateless_vs_sessions)
    print_pair("auth, --json-response", "auth, SSE", json_vs_sse)
    print("\n| memory | auth | no-auth |")
    print("|---|---:|---:|")
    for i, done in enumerate((1_000, rss_calls)):
        row(f"RSS after {done:,} calls, MB", f"{rss['auth'][i]:.1f}", f"{rss['no-auth'][i]:.1f}")
    growth = {name: after / before for name, (before, after) in rss.items()}
    row("ratio", f"{growth['auth']:.3f}", f"{growth['no-auth']:.3f}")
    floor, library, whole = (statistics.median(runs[k]) for k in ("import", "library", "client"))
    print("\n| start-up (median of alternating runs) | seconds | ÷ import | ÷ library |")
    print("|---|---:|---:|---:|")
    row("`from fastmcp import Client`", f"{floor:.2f}", "1.000", "")
    row(
        "bare Client, no auth: connect, list, 2 calls",
        f"{library:.2f}",
        f"{library / floor:.3f}",
        "1",
    )
    row("client.py: mint, connect, list, 2 calls", f"{whole:.2f}", *ratios(whole, floor, library))
    print(f"| server.py start to first answer | {ready:.2f} | | |")
    print("\n| one token check, in process | µs |")
    print("|---|---:|")
    row("StrictJWTVerifier, first time (RS256 signature, claims)", f"{verify[0]:.1f}")
    row("StrictJWTVerifier, cached", f"{verify[1]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
