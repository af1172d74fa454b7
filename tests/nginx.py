"""Helpers to run the example behind a real nginx: find it, make a test CA and a server
certificate, fill in deploy/nginx.conf.template, start and stop nginx and the replicas.

Nothing here binds anything but loopback, and every wait has a deadline."""

import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import READY, unavailable

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
SERVER = ROOT / "server.py"
BANNER = "Starting FastMCP server on "
PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
PROXY_ADDR = "127.0.0.2"  # loopback, but not the replicas' 127.0.0.1: the Host differs, no DNS


# --- nginx itself ------------------------------------------------------------------------------


def find_nginx() -> str | None:
    # Debian puts it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def ensure_nginx() -> str:
    """The nginx executable; a test without it skips (fails in CI), saying how to install it."""
    if found := find_nginx():
        return found
    unavailable("nginx is not installed", "install the nginx-light package (Debian, Ubuntu)")


# --- certificates ------------------------------------------------------------------------------


@dataclass
class Certs:
    ca: Path  # what a client trusts: SSL_CERT_FILE for client.py, --cacert for curl
    cert: Path  # the server certificate, for nginx's ssl_certificate
    key: Path  # its private key, for ssl_certificate_key


def make_certs(folder: Path, ip: str = PROXY_ADDR, names: tuple[str, ...] = ()) -> Certs:
    """A throwaway CA and a server certificate it signed, for `ip` (an IP address SAN, so no DNS
    is needed) and `names`, valid for a day. Written as ca.pem, cert.pem and key.pem."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fastmcp-auth test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.IPAddress(ipaddress.ip_address(ip)), *map(x509.DNSName, names)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    certs.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certs.key.chmod(0o600)
    return certs


# --- the configuration -------------------------------------------------------------------------


def render(values: Mapping[str, object], template: str | None = None) -> str:
    """deploy/nginx.conf.template with its ${NAME} placeholders filled, as `envsubst` with the
    list of names would (nginx's own lower-case $variables are left alone). Every placeholder
    must get a value, and every value a placeholder."""
    text = TEMPLATE.read_text() if template is None else template
    wanted = set(PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise KeyError(f"template wants {sorted(wanted)}, got {sorted(values)}")
    return PLACEHOLDER.sub(lambda m: str(values[m[1]]), text)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; the race until use is tiny)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    """Return once (host, port) accepts connections; fail when `proc` exits or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Stop a process this module started, with its whole process group (nginx's workers, a
    shell's background jobs), even when the leader has already exited."""
    deadline = time.monotonic() + timeout
    for signum in (sig, signal.SIGKILL):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            break  # nothing left in the group
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so that the group can empty
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        deadline = time.monotonic() + timeout
    proc.wait(timeout=timeout)


# --- nginx, running ----------------------------------------------------------------------------


@dataclass
class Listen:
    """Where nginx listens: TLS for the public URL, plain HTTP that only redirects."""

    addr: str
    tls_port: int
    http_port: int

    @classmethod
    def free(cls, addr: str = PROXY_ADDR) -> "Listen":
        return cls(addr, free_port(addr), free_port(addr))

    @property
    def public_url(self) -> str:
        return f"https://{self.addr}:{self.tls_port}/mcp"

    @property
    def http_url(self) -> str:
        return f"http://{self.addr}:{self.http_port}/mcp"


@dataclass
class Proxy:
    proc: subprocess.Popen
    folder: Path
    listen: Listen

    def error_log(self) -> str:
        return (self.folder / "error.log").read_text(errors="replace")

    def access_log(self) -> list[str]:
        return (self.folder / "access.log").read_text(errors="replace").splitlines()

    def upstreams(self) -> list[str]:
        """The replica (host:port) that answered each request so far, in order."""
        return re.findall(r" upstream=(\S+) ", "\n".join(self.access_log()))


@contextmanager
def running_nginx(
    folder: Path,
    certs: Certs,
    listen: Listen,
    replicas: list[str],
    template: str | None = None,
) -> Iterator[Proxy]:
    """nginx with the rendered template in `folder` (its prefix: pid, logs, temp files), on
    `listen`, in front of `replicas` (host:port each), TLS with `certs`. Stopped afterwards."""
    nginx = ensure_nginx()
    values = {
        "PROXY_ADDR": listen.addr,
        "TLS_PORT": listen.tls_port,
        "HTTP_PORT": listen.http_port,
        "REPLICA_1": replicas[0],
        "REPLICA_2": replicas[1],
    }
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(render(values, template))
    for name, path in (("cert.pem", certs.cert), ("key.pem", certs.key)):
        if path != folder / name:  # the config names them relative to itself
            shutil.copy(path, folder / name)
    command = [nginx, "-e", "stderr", "-p", f"{folder}/", "-c", str(conf)]
    tested = subprocess.run(
        [*command, "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    if tested.returncode != 0:
        pytest.fail(f"nginx -t refused the config:\n{tested.stderr}")
    with (folder / "stderr.log").open("w") as err:
        proc = subprocess.Popen(command, stdout=err, stderr=err, start_new_session=True)
    try:
        try:
            wait_for_port(listen.addr, listen.tls_port, proc)
        except (RuntimeError, TimeoutError) as e:
            pytest.fail(f"nginx: {e}\n{(folder / 'stderr.log').read_text()}")
        yield Proxy(proc, folder, listen)
    finally:
        stop(proc, signal.SIGQUIT)  # graceful: finish requests in flight, then exit


# --- the replicas ------------------------------------------------------------------------------


@dataclass
class Replica:
    proc: subprocess.Popen
    address: str  # host:port, as nginx's upstream names it
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop(self.proc)


@contextmanager
def running_replicas(
    public_key: Path, public_url: str, folder: Path, env: Mapping[str, str] | None = None, n=2
) -> Iterator[list[Replica]]:
    """`n` copies of server.py on free ports of 127.0.0.1, all serving `public_url`."""
    replicas: list[Replica] = []
    try:
        for i in range(n):
            port = free_port()
            log_path = folder / f"replica{i + 1}.log"
            args = [sys.executable, str(SERVER), "--port", str(port)]
            args += ["--public-url", public_url, "--public-key", str(public_key)]
            with log_path.open("w") as log:
                proc = subprocess.Popen(
                    args,
                    cwd=ROOT,
                    env={**os.environ, **(env or {})},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            replicas.append(Replica(proc, f"127.0.0.1:{port}", log_path))
        deadline = time.monotonic() + 60
        for replica in replicas:  # uvicorn says so once it listens
            while BANNER not in replica.log() or READY not in replica.log():
                if replica.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"replica {replica.address} did not start:\n{replica.log()}")
                time.sleep(0.05)
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


# --- the official MCP SDK client ---------------------------------------------------------------


async def sdk_greet(url: str, token: str, ca: Path, local_address: str = "127.0.0.1") -> dict:
    """As the official MCP SDK client, from `local_address` (any 127.0.0.x), trusting `ca`:
    initialize, list the tools, call greet. Returns what greet said and each step's seconds."""
    transport = httpx2.AsyncHTTPTransport(
        local_address=local_address, verify=ssl.create_default_context(cafile=str(ca))
    )
    headers = {"Authorization": f"Bearer {token}"}
    steps = {}
    async with httpx2.AsyncClient(transport=transport, headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                began = time.monotonic()
                await session.initialize()
                steps["initialize"], began = time.monotonic() - began, time.monotonic()
                await session.list_tools()
                steps["tools/list"], began = time.monotonic() - began, time.monotonic()
                result = await session.call_tool("greet", {"name": local_address})
                steps["tools/call"] = time.monotonic() - began
                return {"said": result.content[0].text, **steps}
