"""Deployed for real: nginx (TLS, deploy/nginx.conf.template) in front of two stateless replicas
of server.py on loopback. client.py and the official MCP SDK client go through it; so do the
refusals a deployer meets, and the abuse the config is there to absorb: slow clients, a request
flood, a token in a query string. The attacker is 127.0.0.5, the legitimate client 127.0.0.6."""

import asyncio
import json
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import INITIALIZE, one_line_error
from nginx import (
    PROXY_ADDR,
    ROOT,
    SERVER,
    TEMPLATE,
    Certs,
    Listen,
    Proxy,
    Replica,
    ensure_nginx,
    free_port,
    make_certs,
    running_nginx,
    running_replicas,
    sdk_greet,
    stop,
)

pytestmark = pytest.mark.real

GREETED = "💬 Greet result: Hello, FastMCP!"
ATTACKER, LEGIT = "127.0.0.5", "127.0.0.6"
CLIENT_ADDRESSES = [f"127.0.0.{10 + i}" for i in range(16)]
DOCS = ROOT / "docs" / "deploying.md"
MCP = {"Accept": "application/json, text/event-stream"}


@dataclass
class Deployment:
    certs: Certs
    proxy: Proxy
    replicas: list[Replica]

    @property
    def url(self) -> str:
        return self.proxy.listen.public_url

    def served_by(self) -> set[str]:
        """The replicas that have answered through the proxy so far."""
        return {up for line in self.proxy.upstreams() for up in line.split(", ")}

    def replica_logs(self) -> str:
        return "\n".join(replica.log() for replica in self.replicas)

    def https(self, source: str = "127.0.0.1") -> httpx.Client:
        """A raw HTTP client from `source` that trusts the deployment's test CA."""
        verify = ssl.create_default_context(cafile=str(self.certs.ca))
        transport = httpx.HTTPTransport(local_address=source, verify=verify)
        return httpx.Client(transport=transport, timeout=10)


@contextmanager
def deployed(folder: Path, keys: Path) -> Iterator[Deployment]:
    """Two replicas serving https://127.0.0.2:PORT/mcp, and nginx in front of them."""
    ensure_nginx()  # before starting anything: it may skip
    certs = make_certs(folder)
    listen = Listen.free()
    with running_replicas(keys / "public.pem", listen.public_url, folder) as replicas:
        addresses = [replica.address for replica in replicas]
        with running_nginx(folder / "nginx", certs, listen, addresses) as proxy:
            yield Deployment(certs, proxy, replicas)


def run_client(keys: Path, url: str, ca: Path | None, *args: str) -> subprocess.CompletedProcess:
    """client.py, trusting `ca` through SSL_CERT_FILE (as the docs say)."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    command = [sys.executable, str(ROOT / "client.py"), "--url", url]
    command += ["--private-key", str(keys / "private.pem"), *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def token_for(keys: Path, url: str) -> str:
    result = run_client(keys, url, None, "--print-token", "--expires-in", "3600")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout
    return one_line_error(result)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """A key pair made the documented way: `python -m fastmcp_auth keygen --dir DIR`."""
    folder = tmp_path_factory.mktemp("deploy-keys")
    command = [sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(folder)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=60)
    return folder


@pytest.fixture(scope="module")
def deployment(keys, tmp_path_factory) -> Iterator[Deployment]:
    with deployed(tmp_path_factory.mktemp("deploy"), keys) as d:
        yield d


# --- it works ----------------------------------------------------------------------------------


def test_client_py_works_through_nginx_with_tls(deployment, keys):
    result = run_client(keys, deployment.url, deployment.certs.ca)
    assert result.returncode == 0, result.stderr
    assert GREETED in result.stdout.splitlines(), result.stdout


def test_sdk_sessions_reach_both_replicas_and_every_call_succeeds(deployment, keys):
    token = token_for(keys, deployment.url)
    said = []
    for address in CLIENT_ADDRESSES[:6]:  # round robin: no session ties a client to a replica
        said.append(asyncio.run(sdk_greet(deployment.url, token, deployment.certs.ca, address)))
    assert [s["said"] for s in said] == [f"Hello, {a}!" for a in CLIENT_ADDRESSES[:6]]
    assert deployment.served_by() == {r.address for r in deployment.replicas}


def test_a_stopped_replica_does_not_stop_service(keys, tmp_path):
    with deployed(tmp_path, keys) as deployment:
        token = token_for(keys, deployment.url)
        deployment.replicas[0].stop()
        for address in CLIENT_ADDRESSES[:6]:
            said = asyncio.run(sdk_greet(deployment.url, token, deployment.certs.ca, address))
            assert said["said"] == f"Hello, {address}!"
        result = run_client(keys, deployment.url, deployment.certs.ca)
        assert GREETED in result.stdout.splitlines(), result.stderr
        assert "connect() failed (111: Connection refused)" in deployment.proxy.error_log()


# --- what is refused, through the proxy -------------------------------------------------------


def test_the_challenge_and_the_metadata_name_the_public_url(deployment):
    with deployment.https() as http:
        refused = http.post(deployment.url, json={})
        assert refused.status_code == 401, refused.text
        metadata_url = deployment.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        challenge = refused.headers["www-authenticate"]
        assert f'resource_metadata="{metadata_url}"' in challenge, challenge
        metadata = http.get(metadata_url)
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["resource"] == deployment.url


def test_a_token_for_another_url_is_refused_and_the_log_says_which_audience(deployment, keys):
    other = "http://localhost:8000/mcp"
    with deployment.https() as http:
        headers = {"Authorization": f"Bearer {token_for(keys, other)}"}
        refused = http.post(deployment.url, json={}, headers=headers)
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    expected = (
        rf"audience mismatch \(got '{re.escape(other)}', expected '{re.escape(deployment.url)}"
    )
    deadline = time.monotonic() + 5
    while not re.search(expected, deployment.replica_logs()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert re.search(expected, deployment.replica_logs()), deployment.replica_logs()[-2000:]


def test_a_foreign_host_gets_421(deployment):
    with deployment.https() as http:
        refused = http.post(deployment.url, json={}, headers={"Host": "evil.example"})
    assert refused.status_code == 421, refused.text


def test_plain_http_is_redirected_and_the_client_names_the_https_url(deployment, keys):
    answer = httpx.post(deployment.proxy.listen.http_url, json={})
    assert answer.status_code == 301, answer.text
    assert answer.headers["location"] == deployment.url
    line = one_line(run_client(keys, deployment.proxy.listen.http_url, deployment.certs.ca))
    assert line.endswith(f"answered HTTP 301: {deployment.url}"), line


def test_a_client_that_does_not_trust_the_certificate_says_so_in_one_line(
    deployment, keys, tmp_path
):
    stranger = make_certs(tmp_path)  # another CA: trusted, but not the one that signed nginx's
    line = one_line(run_client(keys, deployment.url, stranger.ca))
    assert "CERTIFICATE_VERIFY_FAILED" in line, line


def test_the_proxy_up_without_any_replica_is_one_line(keys, tmp_path):
    ensure_nginx()
    certs = make_certs(tmp_path)
    nowhere = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with running_nginx(tmp_path / "nginx", certs, Listen.free(), nowhere) as proxy:
        line = one_line(run_client(keys, proxy.listen.public_url, certs.ca))
    assert line.endswith("answered HTTP 502: Bad Gateway"), line


# --- abuse -------------------------------------------------------------------------------------


QUERY_REFUSED = "No query strings: a token goes in the Authorization header\n"


def test_a_token_in_a_query_string_is_refused_and_reaches_no_log(deployment, keys):
    """A query string is refused before any other check: those that fail later (a body too
    large, 413; a replica down, 502) write the request line to error.log, query and all."""
    secret = f"query-secret-{os.getpid()}"
    headers = {**MCP, "Authorization": f"Bearer {token_for(keys, deployment.url)}"}
    metadata = deployment.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    sent = {
        "an MCP request": ("POST", deployment.url, {"json": INITIALIZE}),
        "a body too large (413)": ("POST", deployment.url, {"content": b"x" * 300_000}),
        "a path nobody serves (404)": ("GET", deployment.url.replace("/mcp", "/nope"), {}),
        "the metadata": ("GET", metadata, {}),
    }
    with deployment.https(LEGIT) as http:
        for name, (method, url, body) in sent.items():
            answer = http.request(method, f"{url}?access_token={secret}", headers=headers, **body)
            assert (answer.status_code, answer.text) == (400, QUERY_REFUSED), name
        plain = http.post(
            f"{deployment.proxy.listen.http_url}?access_token={secret}", json=INITIALIZE
        )
        assert (plain.status_code, plain.text) == (400, QUERY_REFUSED), plain.text
        assert http.post(deployment.url, json=INITIALIZE, headers=headers).status_code == 200
    time.sleep(0.5)  # log lines follow answers
    logs = {
        "nginx access.log": "\n".join(deployment.proxy.access_log()),
        "nginx error.log": deployment.proxy.error_log(),
        "the replicas' logs": deployment.replica_logs(),
    }
    assert [name for name, text in logs.items() if secret in text] == []


def test_a_query_string_to_a_proxy_without_replicas_reaches_no_log(keys, tmp_path):
    """The upstream error (502) is where nginx logs the request line at error level."""
    ensure_nginx()
    certs, nowhere = make_certs(tmp_path), [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    secret = f"query-secret-{os.getpid()}"
    with running_nginx(tmp_path / "nginx", certs, Listen.free(), nowhere) as proxy:
        verify = ssl.create_default_context(cafile=str(certs.ca))
        with httpx.Client(verify=verify, timeout=10) as http:
            refused = http.post(f"{proxy.listen.public_url}?access_token={secret}", json={})
            failed = http.post(proxy.listen.public_url, json={})  # no query: a plain 502
        time.sleep(0.5)
        assert (refused.status_code, refused.text) == (400, QUERY_REFUSED)
        assert failed.status_code == 502 and "connect() failed" in proxy.error_log()
        assert secret not in proxy.error_log() + "\n".join(proxy.access_log())


def test_a_flood_from_one_address_gets_429_and_another_is_still_served(deployment):
    flood, other = Counter(), Counter()

    def send(source: str, count: int, into: Counter) -> None:
        with deployment.https(source) as http:
            for _ in range(count):  # bounded; loopback only
                into[http.post(deployment.url, json=INITIALIZE, headers=MCP).status_code] += 1

    threads = [threading.Thread(target=send, args=(ATTACKER, 75, flood)) for _ in range(4)]
    threads.append(threading.Thread(target=send, args=(LEGIT, 10, other)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert flood[429] > 100, flood  # limit_req: 10 a second, 40 at once
    assert set(flood) <= {401, 429}, flood  # the ones let through reach the token check
    assert other == {401: 10}, other  # served: the token check, not the rate limit


def established_from(source: str, port: int) -> int:
    """TCP connections from `source` to `port` that are established now (/proc/net/tcp)."""
    remote = "".join(f"{int(part):02X}" for part in reversed(source.split(".")))
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1
        for line in lines
        if (fields := line.split())[3] == "01"
        and fields[2].startswith(remote + ":")
        and fields[1].endswith(f":{port:04X}")
    )


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections in /proc")
def test_1200_slow_connections_from_one_address_leave_another_served_fast(deployment, keys):
    listen, ca = deployment.proxy.listen, deployment.certs.ca
    token = token_for(keys, deployment.url)
    served_before = [len(replica.log()) for replica in deployment.replicas]
    attacker = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "slow_clients.py"), listen.addr,
         str(listen.tls_port), str(ca), ATTACKER, "1000", "200", "30"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert attacker.stdout.readline().startswith("opened 1200"), "the attack did not start"
        sessions, most = [], 0
        for _ in range(4):  # a full session every 5 s, while the attack goes on
            most = max(most, established_from(ATTACKER, listen.tls_port))
            sessions.append(asyncio.run(sdk_greet(deployment.url, token, ca, LEGIT)))
            time.sleep(5)
        summary = json.loads(attacker.stdout.readline())
        attacker.wait(timeout=60)
    finally:
        stop(attacker)  # every socket it holds goes with it
    assert most >= 1000, f"only {most} attacker connections were open at once"
    for session in sessions:
        assert session["said"] == f"Hello, {LEGIT}!", session
        steps = {step: session[step] for step in ("initialize", "tools/list", "tools/call")}
        assert max(steps.values()) < 2, steps
    assert "worker_connections are not enough" not in deployment.proxy.error_log()
    during = "".join(r.log()[n:] for r, n in zip(deployment.replicas, served_before, strict=True))
    assert ATTACKER not in during, "a slow client reached a replica"  # nginx buffers bodies
    assert summary["answers"].get("429"), summary  # slow bodies past limit_conn: refused at once


def test_the_bare_server_at_its_descriptor_limit_does_not_flood_its_log(keys, tmp_path):
    """No proxy: 220 idle connections against a 200-descriptor limit. Service stops (nothing
    else can be accepted) but the log must not grow (asyncio on CPython 3.11 logs one traceback
    per refused accept: megabytes a second), and service comes back once they are gone."""
    port, log_path = free_port(), tmp_path / "server.log"

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    command = [sys.executable, str(SERVER), "--port", str(port)]
    command += ["--public-key", str(keys / "public.pem")]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limited,  # noqa: PLW1509 -- only setrlimit, before exec
            start_new_session=True,
        )
    idle = []
    try:
        deadline = time.monotonic() + 60
        while "Uvicorn running on" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        url = f"http://localhost:{port}/mcp"
        assert httpx.post(url, json={}).status_code == 401
        for _ in range(220):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        size = log_path.stat().st_size
        time.sleep(5)
        growth = log_path.stat().st_size - size
        assert growth < 10_000, f"log grew {growth} bytes in 5 s at the descriptor limit"
        for sock in idle:
            sock.close()
        idle.clear()
        deadline = time.monotonic() + 10
        while True:  # back in service once the descriptors are free
            try:
                assert httpx.post(url, json={}, timeout=2).status_code == 401
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "no service after the idle clients left"
                time.sleep(0.2)
    finally:
        for sock in idle:
            sock.close()
        stop(proc)


# --- the config and its docs -------------------------------------------------------------------


def test_every_directive_in_the_config_says_why():
    lines = TEMPLATE.read_text().splitlines()
    silent = [line for line in lines if line.strip().endswith(";") and "#" not in line]
    assert silent == []


def test_the_docs_show_the_config_as_it_is():
    assert f"```nginx\n{TEMPLATE.read_text()}```" in DOCS.read_text()


def test_the_docs_walkthrough_runs_as_written(tmp_path):
    """The "Try it on one machine" block, run by bash as a reader would (its fixed ports must
    be free), with `uv run` as this interpreter."""
    ensure_nginx()
    for addr, port in [(PROXY_ADDR, 8443), (PROXY_ADDR, 8080), ("127.0.0.1", 8001)]:
        with socket.socket() as s:
            if s.connect_ex((addr, port)) == 0:
                pytest.skip(f"{addr}:{port} is in use; the walkthrough needs it")
    section = DOCS.read_text().split("## Try it on one machine")[1].split("\n## ")[0]
    (script,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    script = script.replace("uv run ", f"{sys.executable} ")
    log_path = tmp_path / "walkthrough.log"  # not a pipe: background jobs would hold it open
    env = {k: v for k, v in os.environ.items() if k != "MCP_PUBLIC_KEY"}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**env, "PYTHONIOENCODING": "utf-8"},
        )
    try:
        proc.wait(timeout=180)
    finally:
        stop(proc)  # its whole process group: the replicas and nginx, if the script failed
    output = log_path.read_text()
    assert proc.returncode == 0, output
    assert GREETED in output.splitlines(), output
    assert "301 https://127.0.0.2:8443/mcp" in output.splitlines(), output
    metadata = "https://127.0.0.2:8443/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata}"' in output, output
