"""Run the example: the server, a key pair, or the whole flow in one command.

    uv run -m fastmcp_auth demo              # keys if missing, server on a free port, client
    uv run -m fastmcp_auth demo --authserver # the same with a real OAuth server (Node.js, npm)
    uv run -m fastmcp_auth keygen [--force]  # private.pem (0600) and public.pem, as openssl's
    uv run -m fastmcp_auth [--port 8000]     # the server: the flags of `uv run server.py`

`uv run __main__.py ...` does the same.
"""

import argparse
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
SERVER, CLIENT = HERE / "server.py", HERE / "client.py"
KEY_BITS = 2048
BANNER = re.compile(r"Starting FastMCP server on (\S+)")


def staged(path: Path, data: bytes) -> str:
    """`data` in a new owner-only file (mkstemp's 0600) beside `path`: its name, to rename over."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return name


def write_keys(private_path: Path, public_path: Path, force: bool = False) -> None:
    """Write a fresh RSA key pair: the private key as PKCS#8, the public one as SubjectPublicKeyInfo
    (what `openssl genpkey` and `openssl rsa -pubout` write)."""
    existing = [str(p) for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        sys.exit(f"Error: {' and '.join(existing)} already exist: keep them, or use --force")
    unusable = [str(p) for p in (private_path, public_path) if p.exists() and not p.is_file()]
    if unusable:
        sys.exit(f"Error: {' and '.join(unusable)}: not a file; no key written")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Both keys go to new files first, then are renamed over the old ones: the new private key
    # is never in a file others can read, not even one they opened before --force (writing into
    # the old file would hand it to them through the descriptor they hold), and a failed write
    # leaves the old pair as it was, with no stray copy of a key.
    staged_files = []
    try:
        staged_files.append(staged(private_path, private_pem))
        staged_files.append(staged(public_path, public_pem))
        os.chmod(staged_files[1], 0o644)  # the public key: readable by all, as openssl writes it
        os.replace(staged_files[1], public_path)
        os.replace(staged_files[0], private_path)
    except OSError as e:
        for name in staged_files:
            Path(name).unlink(missing_ok=True)
        sys.exit(f"Error: {e}: no key pair written")


def keygen(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="fastmcp_auth keygen", description="Make a key pair.")
    parser.add_argument("--dir", type=Path, default=HERE, help="where to write (default: here)")
    parser.add_argument("--force", action="store_true", help="replace existing keys")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        sys.exit(f"Error: {args.dir} is not a folder: make it first, or give another --dir")
    private_path, public_path = args.dir / "private.pem", args.dir / "public.pem"
    write_keys(private_path, public_path, args.force)
    print(f"Wrote {private_path} (secret, mode 0600) and {public_path}")


def free_port() -> int:
    """A port nothing listens on now: the server must know its port to know its own URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def started(command: list[str], ready: re.Pattern, env: dict | None = None) -> Iterator[str]:
    """Run `command` until the block ends; yield the URL its output names (`ready`)."""
    with tempfile.TemporaryDirectory() as folder:  # a file, not a pipe: nobody need read it
        log_path = Path(folder) / "log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=log, text=True, env=env)
        try:
            deadline = time.monotonic() + 60
            while not (found := ready.search(log_path.read_text())):
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(
                        f"Error: {Path(command[1]).name} did not start:\n{log_path.read_text()}"
                    )
                time.sleep(0.05)
            yield found[1]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def own_environment() -> dict:
    """This environment without settings meant for another server: the demo sets its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "AS_"))}


def run_client(*args: str, env: dict | None = None) -> None:
    done = subprocess.run([sys.executable, str(CLIENT), *args], env=env, check=False)
    if done.returncode:
        sys.exit(done.returncode)


def demo(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fastmcp_auth demo", description="Start the server on a free port, run the client."
    )
    parser.add_argument(
        "--authserver",
        action="store_true",
        help="get the token from the real authorization server in authserver/ (Node.js, npm)",
    )
    authserver = parser.parse_args(argv).authserver
    private_path, public_path = HERE / "private.pem", HERE / "public.pem"
    if not (private_path.exists() and public_path.exists()):
        write_keys(private_path, public_path)
        print(f"No key pair yet: wrote {private_path} and {public_path}")
    if authserver:
        return demo_with_authserver(private_path, public_path)
    command = [sys.executable, str(SERVER), "--port", str(free_port())]
    env = own_environment()
    with started([*command, "--public-key", str(public_path)], BANNER, env) as url:
        run_client("--url", url, "--private-key", str(private_path), env=env)


def demo_with_authserver(private_path: Path, public_path: Path) -> None:
    """The deployment's flow on loopback: the client proves itself to oidc-provider with its own
    key (private_key_jwt: no shared secret), the provider issues the token, the server checks it
    against the provider's JWKS, and the client finds the provider through the server's
    metadata, trusting no other."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        sys.exit("Error: the authorization server needs Node.js and npm: install them first")
    folder = HERE / "authserver"
    if not (folder / "node_modules").exists():
        print("Installing the authorization server (npm ci in authserver/)...")
        installed = subprocess.run(["npm", "ci", "--silent"], cwd=folder, check=False)
        if installed.returncode != 0:
            sys.exit("Error: npm ci failed in authserver/: is the npm registry reachable?")
    if not (folder / "keys.jwks.json").exists():
        subprocess.run(["node", str(folder / "keygen.mjs")], check=True)
    issuer, port = f"http://127.0.0.1:{free_port()}", free_port()
    url = f"http://localhost:{port}/mcp"
    node = ["node", str(folder / "server.mjs"), "--issuer", issuer, "--resource", url]
    node += ["--client-id", "demo-client", "--client-key", str(public_path)]  # all the AS holds
    mcp = [sys.executable, str(SERVER), "--port", str(port), "--issuer", issuer]
    mcp += ["--jwks-uri", f"{issuer}/jwks"]
    env = own_environment()
    with started(node, re.compile(r"Authorization server on (\S+)"), env):
        with started(mcp, BANNER, env):
            client = ["--url", url, "--client-id", "demo-client", "--issuer", issuer]
            run_client(*client, "--private-key", str(private_path), env=env)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"keygen": keygen, "demo": demo}
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:])
    if {"-h", "--help"} & set(argv):
        print(__doc__.strip() + "\n")  # the sub-commands, then the server's own flags
    # The server reads its flags (and public.pem) as it loads: run it as the script it is.
    sys.argv = [str(SERVER), *argv]
    runpy.run_path(str(SERVER), run_name="__main__")


if __name__ == "__main__":
    main()
