"""The commands a user types: the server's ways to start, keygen, demo, and their errors."""

import os
import socket
import stat
import sys

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from conftest import ROOT, run, run_client, running
from fastmcp_auth import __main__ as cli
from fastmcp_auth import client, server


def one_line_error(result) -> str:
    """The single line a failed command printed; fails if it printed a traceback or more."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [["-m", "fastmcp_auth"], [str(ROOT / "__main__.py")]],
    ids=["python -m fastmcp_auth", "python __main__.py"],
)
def test_the_package_entry_points_serve_the_greet_tool(command, keys, mint, tmp_path):
    args = [sys.executable, *command, "--port", "0", "--public-key", str(keys / "public.pem")]
    with running(args, tmp_path / "server.log") as srv:
        response = srv.post(mint(aud=srv.url))
        assert response.status_code == 200, response.text


def test_the_server_says_which_port_it_serves(keys, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, str(ROOT / "server.py"), "--port", str(port)]
    with running([*args, "--public-key", str(keys / "public.pem")], tmp_path / "log") as srv:
        assert f"Starting FastMCP server on http://localhost:{port}/mcp" in srv.log()
        assert srv.port == port


def test_keygen_writes_an_owner_only_private_key_and_its_public_key(tmp_path):
    result = run([sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # as openssl genpkey
    key = client.load_private_key(private)
    assert key.key_size == 2048
    assert load_pem_public_key(public.read_bytes()) == key.public_key()


def test_keygen_into_a_missing_folder_is_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    result = run([sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(missing)])
    assert (
        one_line_error(result)
        == f"Error: {missing} is not a folder: make it first, or give another --dir"
    )


def test_keygen_refuses_to_overwrite_existing_keys(tmp_path):
    cli.write_keys(tmp_path / "private.pem", tmp_path / "public.pem")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = run([sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(tmp_path)])
    assert "already exist" in one_line_error(result)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_keygen_force_replaces_the_keys_and_keeps_the_private_one_owner_only(tmp_path):
    private = tmp_path / "private.pem"
    cli.write_keys(private, tmp_path / "public.pem")
    old = private.read_bytes()
    os.chmod(private, 0o644)
    result = run(
        [sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(tmp_path), "--force"]
    )
    assert result.returncode == 0, result.stderr
    assert private.read_bytes() != old
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_the_server_without_a_public_key_says_how_to_make_one(tmp_path):
    missing = tmp_path / "public.pem"
    result = run([sys.executable, str(ROOT / "server.py"), "--public-key", str(missing)])
    line = one_line_error(result)
    assert str(missing) in line and "not found" in line, line
    assert "keygen" in line and "openssl genpkey" in line and "openssl rsa" in line, line


def test_the_client_without_a_private_key_says_how_to_make_one(tmp_path):
    missing = tmp_path / "private.pem"
    result = run([sys.executable, str(ROOT / "client.py"), "--private-key", str(missing)])
    line = one_line_error(result)
    assert str(missing) in line and "keygen" in line and "openssl genpkey" in line, line


def test_the_client_without_a_server_says_to_start_it(keys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://localhost:{probe.getsockname()[1]}/mcp"
    args = [sys.executable, str(ROOT / "client.py"), "--url", url]
    result = run([*args, "--private-key", str(keys / "private.pem")])
    line = one_line_error(result)
    assert line == f"Error: Failed to connect to {url}: is the server running? (uv run server.py)"


def test_a_busy_port_is_one_line_that_names_it(live_server, keys):
    args = [sys.executable, str(ROOT / "server.py"), "--port", str(live_server.port)]
    result = run([*args, "--public-key", str(keys / "public.pem")])
    line = one_line_error(result)
    assert f"port {live_server.port}" in line and "--port" in line, line


def test_demo_makes_missing_keys_then_runs_the_whole_flow(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(client, "PRIVATE_KEY", tmp_path / "private.pem")
    monkeypatch.setitem(server.SETTINGS, "public_key", (str(tmp_path / "public.pem"), ""))
    cli.main(["demo"])
    out = capsys.readouterr().out
    assert "No key pair yet: wrote" in out, out
    assert "💬 Greet result: Hello, FastMCP!" in out, out
    assert stat.S_IMODE((tmp_path / "private.pem").stat().st_mode) == 0o600


def rsa_public_key_pem(bits: int) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def ec_public_key_pem() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


SERVER_KEY = ("server.py", "--public-key", "public.pem")
CLIENT_KEY = ("client.py", "--private-key", "private.pem")


@pytest.mark.parametrize(
    "use, make, says",
    [
        (SERVER_KEY, lambda path, keys: path.write_text("junk\n"), "is not a PEM public key"),
        (
            SERVER_KEY,
            lambda path, keys: path.write_bytes((keys / "private.pem").read_bytes()),
            "is a private key: the server needs only public.pem",
        ),
        (
            SERVER_KEY,
            lambda path, keys: path.write_bytes(ec_public_key_pem()),
            "is not an RSA public key",
        ),
        (SERVER_KEY, lambda path, keys: path.mkdir(), "is not a public key file"),
        (SERVER_KEY, lambda path, keys: os.mkfifo(path), "is not a public key file"),
        (
            SERVER_KEY,
            lambda path, keys: path.write_bytes((keys / "public.pem").read_bytes() + bytes(70_000)),
            "is not a public key file (a regular file of < 64 KB)",
        ),
        (
            SERVER_KEY,
            lambda path, keys: path.write_bytes(rsa_public_key_pem(1024)),
            "is not an RSA public key of 2048 bits or more",
        ),
        (CLIENT_KEY, lambda path, keys: path.write_text("junk\n"), "not an unencrypted PEM"),
        (
            CLIENT_KEY,
            lambda path, keys: path.write_bytes((keys / "public.pem").read_bytes()),
            "not an unencrypted PEM private key",
        ),
        (CLIENT_KEY, lambda path, keys: path.mkdir(), "cannot read private key"),
    ],
    ids=[
        "server: malformed",
        "server: private key",
        "server: EC key",
        "server: a folder",
        "server: a FIFO, which would block",
        "server: a key followed by 70 KB of NUL",
        "server: a 1024-bit key",
        "client: malformed",
        "client: public key",
        "client: unreadable",
    ],
)
def test_a_key_file_the_script_cannot_use_is_one_line(use, make, says, keys, tmp_path):
    script, flag, name = use
    path = tmp_path / name
    make(path, keys)
    result = run([sys.executable, str(ROOT / script), flag, str(path)])
    line = one_line_error(result)
    assert says in line and str(path) in line, line


def test_json_response_answers_with_json_and_keeps_every_rule(keys, mint, tmp_path):
    args = [sys.executable, str(ROOT / "server.py"), "--port", "0", "--json-response"]
    with running([*args, "--public-key", str(keys / "public.pem")], tmp_path / "log") as srv:
        accepted = srv.post(mint(aud=srv.url))
        assert accepted.status_code == 200, accepted.text
        assert accepted.headers["content-type"] == "application/json"
        assert accepted.json()["result"]["serverInfo"]["name"] == "JWT-protected greeter"
        refused = srv.post(mint(aud=srv.url, exp=None))
        assert refused.status_code == 401, refused.text
        result = run_client(keys, "--url", srv.url)
        assert "💬 Greet result: Hello, FastMCP!" in result.stdout.splitlines(), result.stderr


@pytest.mark.parametrize(
    "script, args, says",
    [
        ("server.py", ["--port", "99999"], "--port '99999' is not a port number (0 to 65535)"),
        ("server.py", ["--port", "eighty"], "--port 'eighty' is not a whole number > 0"),
        ("server.py", ["--port", "٨٠٠١"], "--port '٨٠٠١' is not a whole number > 0"),
        ("server.py", ["--host", ""], "--host '' would listen on every interface: name an address"),
        ("server.py", ["--max-lifetime", "1e400"], "--max-lifetime '1e400' is not a whole number"),
        ("server.py", ["--max-token-bytes", "1.5"], "--max-token-bytes '1.5' is not a whole"),
        ("server.py", ["--sessions-per-subject", "0"], "--sessions-per-subject '0' is not a"),
        ("server.py", ["--issuer", ""], "--issuer '' is not an http(s) URL"),
        ("server.py", ["--jwks-uri", "http://idp.example/jwks"], "use https (plain http on"),
        ("server.py", ["--jwks-ttl", "10", "--jwks-refresh", "30"], "at least --jwks-refresh"),
        ("server.py", ["--public-url", "http://x/mcp?a=1"], "(no query, fragment or user)"),
        (
            "server.py",
            ["--public-url", "http://x/api"],
            "must end in /mcp, where the server serves",
        ),
        ("client.py", ["--url", "localhost:8000/mcp"], "is not an http(s) URL like"),
        ("client.py", ["--url", "http://localhost:99999/mcp"], "Port out of range 0-65535"),
    ],
)
def test_a_malformed_flag_is_an_argparse_error_not_a_traceback(script, args, says):
    result = run([sys.executable, str(ROOT / script), *args])
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert says in result.stderr.strip().splitlines()[-1], result.stderr
