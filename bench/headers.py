"""One request header of up to --mb MB, sent over loopback to server.py (uvicorn's h11 parser) and
to bench/variant.py --undo h11 (httptools): docs/performance.md's "httptools: refused". Linux only
(it reads /proc). httptools is not a dependency of the project, so:

    uv run --with httptools bench/headers.py [--mb 200]
"""

import argparse
import importlib.util
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastmcp_auth.__main__ import free_port, write_keys

ROOT = Path(__file__).resolve().parent.parent
READY = "Uvicorn running on"  # the server listens: uvicorn's own line
PARSERS = {"h11": ["server.py"], "httptools": ["bench/variant.py", "--undo", "h11"]}


def usage(pid: int) -> tuple[float, int]:
    """RSS in MB, and bytes read so far (rchar: all the socket's, while the server is idle)."""
    text = Path(f"/proc/{pid}/status").read_text() + Path(f"/proc/{pid}/io").read_text()
    rss, read = (int(re.search(rf"{field}:\s+(\d+)", text)[1]) for field in ("VmRSS", "rchar"))
    return rss / 1024, read


def send_header(port: int, mb: int) -> tuple[int, str]:
    """MB sent until the server answered, closed or read nothing for 30 s; its status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: localhost:{port}\r\nX-Junk: ".encode())
        sent = 0
        while sent < mb and not select.select([sock], [], [], 0)[0]:  # no answer, no close yet
            try:
                sock.sendall(b"A" * 2**20)
            except OSError:
                break
            sent += 1
        sock.settimeout(5)
        try:
            return sent, sock.recv(200).split(b"\r\n")[0].decode(errors="replace") or "closed"
        except OSError:  # reset, or no answer in 5 s
            return sent, "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MB of header at most (default 200)")
    args = parser.parse_args()
    if importlib.util.find_spec("httptools") is None:
        sys.exit("Error: no httptools: run `uv run --with httptools bench/headers.py`")
    print("| parser | MB the server read (of MB sent) | status answered | RSS before MB "
          "| RSS after MB |\n|---|---:|---|---:|---:|")  # fmt: skip
    with tempfile.TemporaryDirectory() as name:
        folder, servers = Path(name), []
        write_keys(folder / "private.pem", folder / "public.pem")
        try:
            for label, script in PARSERS.items():
                log = folder / f"{label}.log"  # a file: a full pipe would stall the server
                port = free_port()
                key = ["--port", str(port), "--public-key", str(folder / "public.pem")]
                with log.open("w") as out:
                    servers.append(server := subprocess.Popen(
                        [sys.executable, *script, *key], cwd=ROOT, stdout=out, stderr=out
                    ))  # fmt: skip
                deadline = time.monotonic() + 60
                while READY not in log.read_text(errors="replace"):
                    if server.poll() is not None or time.monotonic() > deadline:
                        sys.exit(f"Error: {label} did not start:\n{log.read_text()}")
                    time.sleep(0.05)
                rss, read = usage(server.pid)
                sent, status = send_header(port, args.mb)  # some MB sit in buffers
                after, read_after = usage(server.pid)
                read = (read_after - read) / 2**20
                print(f"| {label} | {read:.2f} ({sent}) | {status} | {rss:.0f} | {after:.0f} |")
        finally:  # every server stops, whatever happened
            for server in servers:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
