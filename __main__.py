"""Run the example: the server, a key pair, or the whole flow in one command.

    uv run -m fastmcp_auth demo              # keys if missing, server on a free port, client
    uv run -m fastmcp_auth keygen [--force]  # private.pem (0600) and public.pem, as openssl's
    uv run -m fastmcp_auth [--port 8000]     # the server, same flags as `uv run server.py`

`uv run __main__.py ...` does the same.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# Absolute imports: `uv run __main__.py` runs this file outside its package.
from fastmcp_auth import client, server

HERE = Path(__file__).resolve().parent
KEY_BITS = 2048
BANNER = re.compile(r"Starting FastMCP server on (\S+)")


def write_keys(private_path: Path, public_path: Path, force: bool = False) -> None:
    """Write a fresh RSA key pair: the private key as PKCS#8, the public one as SubjectPublicKeyInfo
    (what `openssl genpkey` and `openssl rsa -pubout` write)."""
    existing = [str(p) for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        sys.exit(f"Error: {' and '.join(existing)} already exist: keep them, or use --force")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Created 0600, so the private key is never readable by others, not even for a moment;
    # chmod too, because O_CREAT's mode does not apply to a file that already existed (--force).
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(public_pem)


def keygen(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="fastmcp_auth keygen", description="Make a key pair.")
    parser.add_argument("--dir", type=Path, default=HERE, help="where to write (default: here)")
    parser.add_argument("--force", action="store_true", help="replace existing keys")
    args = parser.parse_args(argv)
    private_path, public_path = args.dir / "private.pem", args.dir / "public.pem"
    write_keys(private_path, public_path, args.force)
    print(f"Wrote {private_path} (secret, mode 0600) and {public_path}")


def demo(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fastmcp_auth demo", description="Start the server on a free port, run the client."
    )
    parser.parse_args(argv)
    private_path, public_path = client.PRIVATE_KEY_PATH, server.PUBLIC_KEY_PATH
    if not (private_path.exists() and public_path.exists()):
        write_keys(private_path, public_path)
        print(f"No key pair yet: wrote {private_path} and {public_path}")

    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, server.__file__, "--port", "0", "--public-key", str(public_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            banner = BANNER.search(proc.stdout.readline())
            if banner is None:
                proc.wait(timeout=10)
                log.seek(0)
                sys.exit(f"Error: the server did not start:\n{log.read()}")
            client.main(["--url", banner[1], "--private-key", str(private_path)])
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"keygen": keygen, "demo": demo}
    if argv and argv[0] in commands:
        commands[argv[0]](argv[1:])
    else:
        server.main(argv)


if __name__ == "__main__":
    main()
