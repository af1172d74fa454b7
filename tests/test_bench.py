"""The benchmark runs and prints every row that docs/performance.md's tables show. Its numbers
are not asserted: a 2-core machine is too noisy for timed tests; the doc says which run."""

import sys

import pytest

from conftest import ROOT, run

pytestmark = pytest.mark.real

SECTION = "## The run"  # the doc's section holding the benchmark's tables, as printed


def rows(text: str) -> list[str]:
    """The first cell of every table row: what is measured, without the figures."""
    return [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]


def test_the_benchmark_prints_the_rows_of_the_performance_doc():
    result = run([sys.executable, str(ROOT / "bench" / "bench.py"), "--quick"], timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = (ROOT / "docs" / "performance.md").read_text()
    assert SECTION in doc, f"docs/performance.md has no {SECTION!r} section"
    measured = doc.split(SECTION)[1].split("\n## ")[0]
    assert rows(measured), "the doc's run shows no table"
    assert rows(result.stdout) == rows(measured)
    for ratio in ("ours ÷ MCP SDK MCPServer + PyJWT", "ours ÷ bare FastMCP (no auth)"):
        assert ratio in result.stdout
        assert ratio in measured
