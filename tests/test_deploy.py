"""Deployed for real: nginx (TLS, deploy/nginx.conf.template) in front of two replicas of
server.py on loopback, in both modes: stateless (round robin) and with sessions (affinity by
client address). client.py and the official MCP SDK client go through it; so do the refusals a
deployer meets, and hundreds of idle connections. nginx comes from Debian's nginx-light,
installed when missing (skipped, with the reason, only when the package cannot be had)."""

import asyncio
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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

GREETED = "💬 Greet result: Hello, FastMCP!"
MODES = {"stateless": {"FASTMCP_STATELESS_HTTP": "true"}, "affinity": {}}
CLIENT_ADDRESSES = [f"127.0.0.{10 + i}" for i in range(32)]  # sources for affinity by address
HEADER_TIMEOUT = int(re.search(r"client_header_timeout (\d+)s;", TEMPLATE.read_text())[1])
DOCS = ROOT / "docs" / "deploying.md"


@dataclass
class Deployment:
    mode: str
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


@contextmanager
def deployed(folder: Path, keys: Path, mode: str) -> Iterator[Deployment]:
    """Two replicas serving https://127.0.0.2:PORT/mcp, and nginx in front of them."""
    ensure_nginx()  # before starting anything: it may skip
    certs = make_certs(folder)
    listen = Listen.free()
    with running_replicas(keys / "public.pem", listen.public_url, folder, MODES[mode]) as reps:
        addresses = [replica.address for replica in reps]
        with running_nginx(folder / "nginx", certs, listen, addresses, mode) as proxy:
            yield Deployment(mode, certs, proxy, reps)


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
    result = run_client(keys, url, None, "--print-token")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def https(deployment: Deployment) -> httpx.Client:
    """A raw HTTP client that trusts the deployment's test CA."""
    return httpx.Client(verify=ssl.create_default_context(cafile=str(deployment.certs.ca)))


def greet_until_both_replicas_served(deployment: Deployment, token: str) -> list[str]:
    """Official SDK sessions from one client address after another until both replicas have
    served (bounded: at most 32 addresses); returns what each greet said."""
    said = []
    for address in CLIENT_ADDRESSES:
        said.append(asyncio.run(sdk_greet(deployment.url, token, deployment.certs.ca, address)))
        if len(deployment.served_by()) == 2:
            break
    return said


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """A key pair made the documented way: `python -m fastmcp_auth keygen --dir DIR`."""
    folder = tmp_path_factory.mktemp("deploy-keys")
    command = [sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(folder)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=60)
    return folder


@pytest.fixture(scope="module", params=list(MODES))
def deployment(request, keys, tmp_path_factory) -> Iterator[Deployment]:
    with deployed(tmp_path_factory.mktemp(f"deploy-{request.param}"), keys, request.param) as d:
        yield d


# --- it works, in both modes -------------------------------------------------------------------


def test_client_py_works_through_nginx_with_tls(deployment, keys):
    result = run_client(keys, deployment.url, deployment.certs.ca)
    assert result.returncode == 0, result.stderr
    assert GREETED in result.stdout.splitlines(), result.stdout


def test_sdk_sessions_reach_both_replicas_and_every_call_succeeds(deployment, keys):
    token = token_for(keys, deployment.url)
    said = greet_until_both_replicas_served(deployment, token)
    assert deployment.served_by() == {r.address for r in deployment.replicas}, said
    assert said == [f"Hello, {a}!" for a in CLIENT_ADDRESSES[: len(said)]]


def test_each_session_stays_on_one_replica(deployment, keys):
    greet_until_both_replicas_served(deployment, token_for(keys, deployment.url))
    replicas_of = defaultdict(set)
    for line in deployment.proxy.access_log():
        if (session := re.search(r" session=(\S+) ", line)[1]) != "-":
            replicas_of[session].add(re.search(r" upstream=(\S+) ", line)[1])
    if deployment.mode == "stateless":
        assert replicas_of == {}  # no Mcp-Session-Id at all
    else:
        assert replicas_of, "the SDK client's initialize opened no session"
        assert all(len(where) == 1 for where in replicas_of.values()), dict(replicas_of)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_stopped_replica_does_not_stop_service(mode, keys, tmp_path):
    with deployed(tmp_path, keys, mode) as deployment:
        token = token_for(keys, deployment.url)
        greet_until_both_replicas_served(deployment, token)
        deployment.replicas[0].stop()
        for address in CLIENT_ADDRESSES[:6]:  # new sessions, some hashed to the stopped one
            said = asyncio.run(sdk_greet(deployment.url, token, deployment.certs.ca, address))
            assert said == f"Hello, {address}!"
        result = run_client(keys, deployment.url, deployment.certs.ca)
        assert GREETED in result.stdout.splitlines(), result.stderr
        assert "connect() failed (111: Connection refused)" in deployment.proxy.error_log()


# --- what is refused, through the proxy -------------------------------------------------------


def test_the_challenge_and_the_metadata_name_the_public_url(deployment):
    with https(deployment) as http:
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
    with https(deployment) as http:
        refused = http.post(
            deployment.url,
            json={},
            headers={"Authorization": f"Bearer {token_for(keys, other)}"},
        )
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert re.search(
        rf"audience mismatch.*{re.escape(other)}.*{re.escape(deployment.url)}",
        deployment.replica_logs(),
    ), deployment.replica_logs()[-2000:]


def test_a_foreign_host_gets_421_and_a_log_line_naming_it(deployment):
    with https(deployment) as http:
        refused = http.post(deployment.url, json={}, headers={"Host": "evil.example"})
    assert refused.status_code == 421, refused.text
    lines = [line for line in deployment.replica_logs().splitlines() if "evil.example" in line]
    assert any("FASTMCP_HTTP_ALLOWED_HOSTS" in line for line in lines), lines


def test_plain_http_is_redirected_to_the_https_url(deployment, keys):
    answer = httpx.post(deployment.proxy.listen.http_url, json={})
    assert answer.status_code == 301, answer.text
    assert answer.headers["location"] == deployment.url
    result = run_client(keys, deployment.proxy.listen.http_url, deployment.certs.ca)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    line = result.stderr.strip()
    assert deployment.url in line, line  # the client names the URL to use instead


def test_a_client_that_does_not_trust_the_certificate_says_so_in_one_line(
    deployment, keys, tmp_path
):
    stranger = make_certs(tmp_path)  # another CA: trusted, but not the one that signed nginx's
    result = run_client(keys, deployment.url, stranger.ca)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "certificate" in line and "SSL_CERT_FILE" in line, line


def test_the_proxy_up_without_any_replica_is_one_line(keys, tmp_path):
    ensure_nginx()
    certs = make_certs(tmp_path)
    nowhere = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with running_nginx(tmp_path / "nginx", certs, Listen.free(), nowhere, "stateless") as proxy:
        result = run_client(keys, proxy.listen.public_url, certs.ca)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "502" in line, line


# --- slow and idle clients ---------------------------------------------------------------------


def open_idle(addr: str, port: int, ca: Path, count: int) -> list[socket.socket]:
    """`count` connections that never finish a request: a third bare TCP, a third past the TLS
    handshake, a third with half a request head."""
    context = ssl.create_default_context(cafile=str(ca))
    idle = []
    for i in range(count):
        sock = socket.create_connection((addr, port), timeout=5)
        if i % 3:
            sock = context.wrap_socket(sock, server_hostname=addr)
        if i % 3 == 2:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: " + addr.encode() + b"\r\nContent-Ty")
        idle.append(sock)
    return idle


def closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts descriptors in /proc")
def test_idle_connections_stay_at_the_proxy_and_a_real_client_is_served(keys, tmp_path):
    with deployed(tmp_path, keys, "stateless") as deployment:
        before = [open_descriptors(r.proc.pid) for r in deployment.replicas]
        listen = deployment.proxy.listen
        idle = open_idle(listen.addr, listen.tls_port, deployment.certs.ca, 300)
        opened = time.monotonic()
        try:
            result = run_client(keys, deployment.url, deployment.certs.ca)
            assert GREETED in result.stdout.splitlines(), result.stderr
            during = [open_descriptors(r.proc.pid) for r in deployment.replicas]
            assert all(d < b + 20 for b, d in zip(before, during, strict=True)), (before, during)
            if time.monotonic() < opened + HEADER_TIMEOUT - 1:  # nginx keeps them until then
                assert not any(map(closed_by_peer, idle))
            deadline = opened + HEADER_TIMEOUT + 5
            while time.monotonic() < deadline and not all(map(closed_by_peer, idle)):
                time.sleep(0.5)
            still_open = sum(not closed_by_peer(sock) for sock in idle)
            assert still_open == 0, f"{still_open} of 300 idle connections outlived the timeout"
        finally:
            for sock in idle:
                sock.close()


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
        while "Starting FastMCP server on" not in log_path.read_text():
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
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
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
