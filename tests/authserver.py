"""The demo's real authorization server (authserver/, panva's oidc-provider) for the tests.

Not a test module; the tests import it:

    node_dir = install(tmp)                  # npm ci from our lockfile; Unavailable → skip
    kids = make_keys(tmp / "k.jwks.json", 2)  # the first kid signs
    with start(node_dir, issuer, [url], "demo-client", secret, tmp / "k.jwks.json", tmp / "as.log"):
        access_token = get_token(issuer, "demo-client", secret, url, "read write")
"""

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

AUTHSERVER = Path(__file__).resolve().parent.parent / "authserver"
# What npm says when it cannot talk to its registry (its `npm error code ...` line).
NETWORK_CODES = re.compile(
    r"npm (?:error|ERR!) (?:network|code (?:ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT"
    r"|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT|E5\d\d)\b)"
)


def run(command: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class Unavailable(Exception):
    """Node, npm or the npm registry is out of reach: a reason to skip, not a failure."""


def install(tmp_dir: Path, timeout: float = 300) -> Path:
    """Copy authserver/ (without node_modules) into tmp_dir and `npm ci` there; return the copy."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise Unavailable("the real authorization server needs Node.js and npm on PATH")
    node_dir = Path(tmp_dir) / "authserver"
    node_dir.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "server.mjs", "keygen.mjs"):
        shutil.copy(AUTHSERVER / name, node_dir / name)
    command = ["npm", "ci", "--loglevel=error", "--no-audit", "--no-fund"]
    try:
        done = run(command, timeout, cwd=node_dir)
    except subprocess.TimeoutExpired:
        reason = f"npm ci took over {timeout:.0f} s: is the npm registry reachable?"
        raise Unavailable(reason) from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        if network := NETWORK_CODES.search(output):
            lines = (line for line in output.splitlines() if "request to" in line)
            detail = next(lines, network.group(0)).removeprefix("npm error ")
            raise Unavailable(f"the npm registry cannot be reached: {detail}")
        raise RuntimeError(f"npm ci failed in {node_dir}:\n{output}")
    return node_dir


def keygen(path: Path, *flags: str) -> list[str]:
    """Run keygen.mjs on path with flags (--add, --remove-oldest); return the kids, signer first."""
    command = ["node", str(AUTHSERVER / "keygen.mjs"), "--out", str(path), *flags]
    done = run(command, 60)
    if done.returncode != 0:
        raise RuntimeError(f"keygen {' '.join(flags)} failed: {done.stderr.strip()}")
    return [key["kid"] for key in json.loads(Path(path).read_text())["keys"]]


def make_keys(path: Path, count: int = 1) -> list[str]:
    """A new key file at path holding count keys; returns their kids, the signing one first."""
    Path(path).unlink(missing_ok=True)
    kids = keygen(path)
    for _ in range(count - 1):
        kids = keygen(path, "--add")
    return kids


@contextmanager
def start(
    node_dir: Path,
    issuer: str,
    resources: list[str],
    client_id: str,
    secret: str,
    keys_path: Path,
    log_path: Path,
    token_ttl: int = 300,
    ready_within: float = 15,
) -> Iterator[subprocess.Popen]:
    """Run the authorization server until the block ends; yield it once it says it is ready."""
    issuer = issuer.rstrip("/")
    command = ["node", str(Path(node_dir) / "server.mjs"), "--issuer", issuer]
    command += ["--resource", ",".join(resources), "--client-id", client_id]
    command += ["--keys", str(keys_path), "--token-ttl", str(token_ttl)]
    env = {**os.environ, "AS_CLIENT_SECRET": secret}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + ready_within
        while "Authorization server on " not in Path(log_path).read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                state = "exited" if process.poll() is not None else f"not ready in {ready_within} s"
                raise RuntimeError(f"authorization server {state}:\n{Path(log_path).read_text()}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def get_token(issuer: str, client_id: str, secret: str, resource: str, scope: str) -> str:
    """An access token by client credentials (client_secret_basic); HTTPError on refusal."""
    form = {"grant_type": "client_credentials", "resource": resource, "scope": scope}
    body = urllib.parse.urlencode(form).encode()
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    request = urllib.request.Request(
        f"{issuer.rstrip('/')}/token", data=body, headers={"Authorization": f"Basic {basic}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]
