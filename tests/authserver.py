"""The demo's real authorization server (authserver/, panva's oidc-provider) for the tests.

Not a test module; the tests import it:

    node_dir = installed()                   # authserver/ with its node_modules, or skip
    kids = make_keys(tmp / "k.jwks.json", 2)  # the first kid signs
    with start(node_dir, issuer, [url], "demo-client", secret, tmp / "k.jwks.json", tmp / "as.log"):
        access_token = get_token(issuer, "demo-client", secret, url, "read write")
"""

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import unavailable

AUTHSERVER = Path(__file__).resolve().parent.parent / "authserver"


def run(command: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def installed() -> Path:
    """authserver/, once `npm ci --prefix authserver` has installed oidc-provider there (.ci/run
    does); a test without it skips (fails in CI) and says so. Tests never run npm themselves."""
    if shutil.which("node") is None:
        unavailable("the real authorization server needs Node.js 20 or newer", "install Node.js")
    if not (AUTHSERVER / "node_modules" / "oidc-provider").is_dir():
        unavailable("oidc-provider is not installed", "npm ci --prefix authserver")
    return AUTHSERVER


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
    secret: str | None,
    keys_path: Path,
    log_path: Path,
    token_ttl: int = 300,
    ready_within: float = 15,
    flags: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen]:
    """Run the authorization server until the block ends; yield it once it says it is ready.
    `secret` None: no client secret; `flags`: more of server.mjs's (--client-key, --login)."""
    issuer = issuer.rstrip("/")
    command = ["node", str(Path(node_dir) / "server.mjs"), "--issuer", issuer]
    command += ["--resource", ",".join(resources), "--client-id", client_id]
    command += ["--keys", str(keys_path), "--token-ttl", str(token_ttl), *flags]
    env = {k: v for k, v in os.environ.items() if k != "AS_CLIENT_SECRET"}
    if secret is not None:
        env["AS_CLIENT_SECRET"] = secret
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


def browser() -> str:
    """$BROWSER for a client's login: authserver/browser.mjs signs a user in, in headless
    Chromium (Debian's; .ci/run installs it); a test without it skips (fails in CI)."""
    if not (AUTHSERVER / "node_modules" / "playwright-core").is_dir():
        unavailable("playwright-core is not installed", "npm ci --prefix authserver")
    if not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        unavailable("no Chromium at /usr/bin/chromium", "install the chromium package (Debian)")
    return f"node {AUTHSERVER / 'browser.mjs'} %s &"  # &: the client listens meanwhile


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
