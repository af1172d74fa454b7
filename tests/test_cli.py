"""The commands a user types: the server's ways to start, keygen, demo, and their errors."""

import os
import stat
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import ROOT, free_port, one_line_error, refusal, run, running, serve
from fastmcp_auth import __main__ as cli

SERVER = [sys.executable, str(ROOT / "server.py")]


@pytest.mark.parametrize(
    "command",
    [["-m", "fastmcp_auth"], [str(ROOT / "__main__.py")]],
    ids=["python -m fastmcp_auth", "python __main__.py"],
)
def test_the_package_entry_points_serve_the_greet_tool(command, mint, tmp_path):
    port = free_port()
    with running([sys.executable, *command, "--port", str(port)], tmp_path / "log") as srv:
        assert srv.url == f"http://localhost:{port}/mcp"
        response = srv.post(mint(aud=srv.url))
        assert response.status_code == 200, response.text


def test_the_server_prints_one_url_the_one_clients_use(tmp_path):
    with serve(log_path=tmp_path / "log") as srv:
        urls = [line for line in srv.log().splitlines() if "/mcp" in line]
    assert urls == [f"Starting FastMCP server on {srv.url}"], urls


def test_keygen_writes_an_owner_only_private_key_and_its_public_key(tmp_path):
    result = run([sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # as openssl genpkey
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert key.key_size == 2048
    assert serialization.load_pem_public_key(public.read_bytes()) == key.public_key()


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


def test_keygen_force_never_writes_the_new_key_into_a_file_others_opened(tmp_path):
    # A reader that opened the old, world-readable private.pem before --force keeps reading the
    # old file: the new key goes to a new 0600 file, renamed over it.
    private = tmp_path / "private.pem"
    cli.write_keys(private, tmp_path / "public.pem")
    os.chmod(private, 0o644)
    with private.open("rb") as opened_by_another_user:
        old = private.read_bytes()
        cli.write_keys(private, tmp_path / "public.pem", force=True)
        assert opened_by_another_user.read() == old
    assert private.read_bytes() != old
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


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


def test_demo_makes_missing_keys_then_runs_the_whole_flow(tmp_path):
    # A copy of the example in a folder of its own: the demo writes its keys beside the scripts.
    for name in ("server.py", "client.py", "__main__.py"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "MCP_PUBLIC_KEY"}
    result = run([sys.executable, str(tmp_path / "__main__.py"), "demo"], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No key pair yet: wrote" in result.stdout, result.stdout
    assert "💬 Greet result: Hello, FastMCP!" in result.stdout.splitlines(), result.stdout
    assert stat.S_IMODE((tmp_path / "private.pem").stat().st_mode) == 0o600


def pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda path, keys: None, "No such file or directory"),
        (lambda path, keys: path.write_text("junk\n"), "Unable to load PEM file"),
        (
            lambda path, keys: path.write_bytes((keys / "private.pem").read_bytes()),
            "Are you sure this is a public key?",
        ),
        (
            lambda path, keys: path.write_bytes(pem(ec.generate_private_key(ec.SECP256R1()))),
            "is not an RSA public key of 2048 bits or more",
        ),
        (
            lambda path, keys: path.write_bytes(pem(rsa.generate_private_key(65537, 1024))),
            "is not an RSA public key of 2048 bits or more",
        ),
        (lambda path, keys: path.mkdir(), "Is a directory"),
    ],
    ids=["missing", "malformed", "a private key", "an EC key", "a 1024-bit key", "a folder"],
)
def test_a_public_key_the_server_cannot_use_is_one_line(make, says, keys, tmp_path):
    path = tmp_path / "public.pem"
    make(path, keys)
    line = refusal("server.py", "--public-key", str(path))
    assert line.startswith(f"Error: {path}") and says in line, line


def test_a_missing_public_key_is_one_line_naming_the_command_that_makes_it(tmp_path):
    line = one_line_error(run([*SERVER, "--public-key", str(tmp_path / "public.pem")]))
    assert "openssl rsa -in private.pem -pubout" in line, line


@pytest.mark.parametrize(
    "name, says",
    [("public.pem", "Are you sure this is a private key?"), ("nothing", "No such file")],
)
def test_a_private_key_the_client_cannot_use_is_one_line(keys, name, says):
    key = keys / name
    line = refusal("client.py", "--print-token", "--private-key", str(key))
    assert line.startswith(f"Error: {key}: ") and says in line, line
    assert "openssl genpkey -algorithm RSA -out private.pem" in line, line


def test_a_busy_port_is_one_line_that_names_it(live_server):
    result = run([*SERVER, "--port", str(live_server.port)])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "address already in use" in errors[0], result.stderr
    assert f"('127.0.0.1', {live_server.port})" in errors[0], errors


@pytest.mark.parametrize(
    "args, says",
    [
        (["--port", "abc"], "Error: port 'abc': Input should be a valid integer"),
        (["--port", "99999"], "Error: port '99999': Input should be less than 65536"),
        (["--port", "0"], "Error: port '0': Input should be greater than 0"),
        (["--public-url", "mcp.example.com"], "Error: public_url 'mcp.example.com': Value error, "),
        (["--public-url", "http://x/api"], "Error: public_url 'http://x/api': Value error, expec"),
        (["--public-url", "http://x/mcp?a=1"], "Error: public_url 'http://x/mcp?a=1': Value erro"),
        (["--issuer", ""], "Error: issuer '': Value error, expected http(s)://HOST[:PORT]/PATH"),
        (["--jwks-uri", "idp.example/jwks"], "Error: jwks_uri 'idp.example/jwks': Value error"),
        (["--public-url", "ftp://x/mcp"], "Error: public_url 'ftp://x/mcp': Value error, expect"),
        (["--issuer", "http://user@idp.example"], "Error: issuer 'http://user@idp.example': V"),
        # Parsed as URLs, not only matched by a pattern (each of these passed the pattern):
        (["--jwks-uri", "http://[::1"], "Error: jwks_uri 'http://[::1': Value error, Invalid IPv6"),
        (["--public-url", "http://[/mcp"], "Error: public_url 'http://[/mcp': Value error, Inval"),
        (["--issuer", "http://:80"], "Error: issuer 'http://:80': Value error, expected http(s)"),
        (["--public-url", "http://x:99999/mcp"], "Error: public_url 'http://x:99999/mcp': Value"),
        (["--public-url", "http://x/mcp#f"], "Error: public_url 'http://x/mcp#f': Value error, e"),
        (["--public-url", "http://:pw@x/mcp"], "Error: public_url 'http://:pw@x/mcp': Value erro"),
        # The audience is compared as written: as FastMCP writes the RFC 9728 `resource`
        (["--public-url", "https://X.com:443/mcp"], "Error: public_url 'https://X.com:443/mcp': "),
        # A wildcard host would turn FastMCP's Host check off:
        (["--public-url", "http://*/mcp"], "Error: public_url 'http://*/mcp': Value error, expe"),
    ],
)
def test_a_malformed_setting_is_one_error_line(args, says):
    line = refusal("server.py", *args)
    assert line.startswith(says), line


def test_a_malformed_setting_from_the_environment_is_one_error_line():
    line = one_line_error(run(SERVER, env={**os.environ, "MCP_PORT": "eighty"}))
    assert line.startswith("Error: port 'eighty': Input should be a valid integer"), line


def test_an_empty_host_is_refused_not_every_interface():
    line = refusal("server.py", env={"MCP_HOST": ""})
    assert line.startswith("Error: host '': String should have at least 1 character"), line


def test_keygen_over_a_folder_named_public_pem_keeps_the_old_pair(tmp_path):
    private = tmp_path / "private.pem"
    cli.write_keys(private, tmp_path / "old-public.pem")
    (tmp_path / "public.pem").mkdir()
    old = private.read_bytes()
    command = [sys.executable, "-m", "fastmcp_auth", "keygen", "--dir", str(tmp_path), "--force"]
    assert "public.pem: not a file; no key written" in one_line_error(run(command))
    assert private.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_misspelt_flag_is_one_error_line():
    line = refusal("server.py", "--public-urll", "http://localhost:8000/mcp")
    assert line.startswith("Error: ") and "--public-urll" in line, line


def test_an_unsafe_url_from_the_environment_is_one_error_line():
    line = refusal("server.py", env={"MCP_PUBLIC_URL": "http://*/mcp"})
    assert line.startswith("Error: public_url 'http://*/mcp': Value error, expected"), line
