"""The README is executable truth: its commands are what CI runs, its output what code prints."""

import re
import shlex

import pytest

from conftest import ROOT, run_client

README = (ROOT / "README.md").read_text()


def fenced_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


CLIENT_RUNS = re.findall(r"```bash\n(uv run client\.py.*?)\n```\n\n```text\n(.*?)```", README, re.S)


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
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command.removeprefix("uv ") in ci, command


def test_the_readme_is_a_five_minute_read():
    assert len(README.encode()) <= 12 * 1024
