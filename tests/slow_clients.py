"""An attacker for tests/test_deploy.py, run as a process of its own: slow TLS connections from one
loopback address to the proxy, kept open (and reopened when the proxy closes them) until time is
up, then all closed. Not a test module.

    python tests/slow_clients.py HOST PORT CA SOURCE BODIES HEADS SECONDS

BODIES connections send a whole `POST /mcp` head, then one body byte every 8 s; HEADS send half a
request head and nothing more. It prints `opened N` once it has opened BODIES + HEADS, and a JSON
summary at the end. Bounded: at most 300 connection attempts a second and 12,000 in all.
"""

import asyncio
import json
import logging
import resource
import ssl
import sys
import time
from collections import Counter

TRICKLE, OPEN_RATE, MAX_OPENS = 8.0, 300, 12_000


async def attack(host: str, port: int, ca: str, source: str, bodies: int, heads: int, seconds):
    context = ssl.create_default_context(cafile=ca)
    deadline = time.monotonic() + seconds
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    half = f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Ty".encode()
    opens, answers, live = Counter(), Counter(), set()
    pace = asyncio.Semaphore(1)

    async def connect() -> tuple | None:
        async with pace:  # OPEN_RATE attempts a second at most
            await asyncio.sleep(1 / OPEN_RATE)
        if opens["tried"] >= MAX_OPENS or time.monotonic() > deadline - 1:
            return None
        opens["tried"] += 1
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host, local_addr=(source, 0)
                ),
                10,
            )
        except (OSError, TimeoutError) as e:
            opens[type(e).__name__] += 1
            return None

    async def slot(slow_body: bool) -> None:
        while time.monotonic() < deadline - 1:
            if (pair := await connect()) is None:
                await asyncio.sleep(0.5)
                continue
            reader, writer = pair
            live.add(writer)
            if len(live) == bodies + heads and not opens["reported"]:
                opens["reported"] = 1
                print(f"opened {len(live)}", flush=True)
            writer.write(head if slow_body else half)
            try:
                while time.monotonic() < deadline:
                    wait = min(TRICKLE if slow_body else 3600, deadline - time.monotonic())
                    try:
                        answer = await asyncio.wait_for(reader.read(4096), max(wait, 0.01))
                    except TimeoutError:
                        if slow_body and not writer.is_closing():
                            writer.write(b" ")  # JSON whitespace, one byte at a time
                        continue
                    if not answer:
                        break  # closed by the proxy: open another
                    if answer.startswith(b"HTTP/1.1 "):
                        answers[answer.split()[1].decode()] += 1
            except (OSError, ssl.SSLError):
                pass
            finally:
                live.discard(writer)
                writer.transport.abort()

    tasks = [asyncio.create_task(slot(True)) for _ in range(bodies)]
    tasks += [asyncio.create_task(slot(False)) for _ in range(heads)]
    await asyncio.wait(tasks, timeout=seconds + 15)
    for writer in list(live):
        writer.transport.abort()
    return {"attempts": opens["tried"], "failed": opens["OSError"], "answers": dict(answers)}


def main() -> None:
    host, port, ca, source, bodies, heads, seconds = sys.argv[1:8]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,200 sockets and then some
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # writes to sockets being closed
    result = asyncio.run(
        attack(host, int(port), ca, source, int(bodies), int(heads), float(seconds))
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
