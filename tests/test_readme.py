"""The README is executable truth: its commands are what CI runs, its output what code prints,
its numbers what the files hold."""

import re
import shlex
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run, run_client

README = (ROOT / "README.md").read_text()
CLIENT_RUNS = re.findall(r"```bash\n(uv run client\.py.*?)\n```\n\n```text\n(.*?)```", README, re.S)


def fenced_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_shows_three_client_runs():
    assert [command for command, _ in CLIENT_RUNS] == [
        "uv run client.py",
        'uv run client.py --scopes "read admin"',
        "uv run client.py --scopes write",
    ]


@pytest.mark.parametrize("command, shown", CLIENT_RUNS, ids=[c for c, _ in CLIENT_RUNS])
def test_the_readme_client_output_is_what_client_py_prints(live_server, keys, command, shown):
    result = run_client(keys, "--url", live_server.url, *shlex.split(command)[3:])
    assert result.stdout + result.stderr == shown.replace(
        "localhost:8000/", f"localhost:{live_server.port}/"
    )


def test_the_readme_server_line_is_what_server_py_prints(live_server):
    (shown,) = [block for block in fenced_blocks("text") if "Starting FastMCP server" in block]
    # The walk-through's server runs on port 8000, the test server on a free port.
    assert shown.replace(":8000/", f":{live_server.port}/") in live_server.log()


def test_ci_runs_the_readme_quick_start_commands():
    quick_start = README.split("## Quick start")[1].split("\n## ")[0]
    commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", quick_start, re.S)]
    assert commands == ["uv run -m fastmcp_auth demo", "uv run --extra dev pytest"]
    assert "`uv run --extra dev pytest --real`" in quick_start
    ci = (ROOT / ".ci" / "run").read_text()
    for command in [*commands, "uv run --extra dev pytest --real"]:
        assert command.removeprefix("uv ") in ci, command


@pytest.mark.parametrize("name, lines", [("server.py", 130), ("client.py", 100)])
def test_the_readme_says_how_long_the_two_files_are_and_they_keep_to_it(name, lines):
    assert f"`{name}` ({lines} lines)" in README
    assert len((ROOT / name).read_text().splitlines()) <= lines


def test_the_copy_section_adds_what_the_two_files_import():
    (add,) = [line for line in README.splitlines() if line.startswith("uv add ")]
    packages = {re.split(r"[\[<>=~;]", name)[0] for name in shlex.split(add)[2:]}
    imported = set()
    for name in ("server.py", "client.py"):
        source = (ROOT / name).read_text()
        imported |= set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
    third_party = imported - set(sys.stdlib_module_names)
    # The rest come with FastMCP: the MCP SDK's own dependencies, which the files use as they are.
    with_fastmcp = {"anyio", "cryptography", "joserfc", "pydantic", "pydantic_settings"}
    assert third_party - with_fastmcp == {"fastmcp", "httpx2", "jwt"}
    assert {"fastmcp", "httpx2", "pyjwt", "uvloop"} == packages, add


def test_the_readme_is_a_five_minute_read():
    assert len(README.encode()) <= 12 * 1024


def test_the_test_suite_writes_nothing_into_the_working_tree():
    tracked = run(["git", "status", "--porcelain", "--ignored"]).stdout.splitlines()
    made = [line for line in tracked if line.startswith("!!") and "/" not in line[3:].rstrip("/")]
    allowed = {".venv", ".pytest_cache", ".ruff_cache", "__pycache__", "fastmcp_auth.egg-info"}
    allowed |= {"private.pem", "public.pem"}  # the demo's, named in the README
    assert {Path(line[3:].rstrip("/")).name for line in made} <= allowed, made
