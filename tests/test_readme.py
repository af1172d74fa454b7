"""The README is executable truth: its commands are what CI runs, its output what code prints,
its numbers what the files hold."""

import re
import shlex
import sys
import tomllib
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


@pytest.mark.parametrize("name", ["server.py", "client.py"])
def test_the_readme_says_how_long_the_two_files_are(name):
    lines = len((ROOT / name).read_text().splitlines())
    assert f"`{name}` ({lines} lines)" in README


def test_the_readme_names_the_real_suite_and_how_many_tests_it_holds():
    collected = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--real"])
    real = re.search(r"(\d+)/\d+ tests collected", collected.stdout)
    assert real, collected.stdout + collected.stderr
    assert f"It reports the {real[1]} tests of the real-component suite as deselected" in README


def test_the_copy_section_adds_what_the_two_files_import():
    (add,) = [line for line in README.splitlines() if line.startswith("uv add ")]
    packages = {re.split(r"[\[<>=~;]", name)[0] for name in shlex.split(add)[2:]}
    imported = set()
    for name in ("server.py", "client.py"):
        source = (ROOT / name).read_text()
        imported |= set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
        # and those imported where they are used (`import httpx2` inside a function)
        imported |= set(re.findall(r"^ +(?:from|import) (\w+)", source, re.M))
    third_party = imported - set(sys.stdlib_module_names)
    distributions = {"jwt": "pyjwt", "pydantic_core": "pydantic-core"}
    distributions |= {"pydantic_settings": "pydantic-settings"}
    named = {distributions.get(module, module) for module in third_party}
    assert named | {"uvloop"} == packages, add  # uvloop: run by anyio, not imported
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {re.split(r"[\[<>=~;]", d)[0] for d in declared} == packages | {"uvicorn"}


def test_the_readme_is_a_five_minute_read():
    assert len(README.encode()) <= 12_000


def test_the_test_suite_writes_nothing_into_the_working_tree():
    tracked = run(["git", "status", "--porcelain", "--ignored"]).stdout.splitlines()
    made = [line for line in tracked if line.startswith("!!") and "/" not in line[3:].rstrip("/")]
    allowed = {".venv", ".pytest_cache", ".ruff_cache", "__pycache__", "fastmcp_auth.egg-info"}
    allowed |= {"private.pem", "public.pem"}  # the demo's, named in the README
    assert {Path(line[3:].rstrip("/")).name for line in made} <= allowed, made
