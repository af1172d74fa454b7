"""The two files stand alone: copied into an empty `uv init` project with the README's `uv add`
line and openssl's keys, they greet. Real components: uv, openssl, and the PyPI registry."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, free_port, running, unavailable

pytestmark = pytest.mark.real

README = (ROOT / "README.md").read_text()
COPY = README.split("## Copy it into your project")[1].split("\n## ")[0]


def test_the_two_scripts_copied_alone_run_with_openssl_keys(tmp_path):
    uv, openssl = os.environ.get("UV") or shutil.which("uv"), shutil.which("openssl")
    if uv is None or openssl is None:
        unavailable(f"needs uv and openssl (uv: {uv}, openssl: {openssl})", "install them")
    (block,) = re.findall(r"```bash\n(.*?)```", COPY, re.S)
    lines = block.strip().splitlines()
    assert lines[-1] == "uv run server.py", lines
    # A clone of another name: the block runs from it as written, but for its last line.
    clone = tmp_path / "some-clone-name"
    clone.mkdir()
    for name in ("server.py", "client.py"):
        shutil.copy(ROOT / name, clone / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "VIRTUAL_ENV"))}
    path = f"{os.path.dirname(uv)}{os.pathsep}{env['PATH']}"  # the `uv` the README names
    script = "\n".join(lines[:-1])
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=clone,
                          env={**env, "PATH": path}, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, f"{script}: {done.stderr}"
    project = tmp_path / "my-server"
    uv_run = [uv, "run", "--quiet"]
    port = free_port()
    server = [*uv_run, "server.py", "--port", str(port)]
    with running(server, tmp_path / "log", cwd=project, env=env) as srv:
        client = [*uv_run, "client.py", "--url", srv.url]
        utf8 = {**env, "PYTHONIOENCODING": "utf-8"}
        result = subprocess.run(client, cwd=project, env=utf8, capture_output=True, text=True,
                                timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "💬 Greet result: Hello, FastMCP!" in result.stdout.splitlines(), result.stdout
