"""The benchmark runs and prints every figure the README's Performance table shows. Its numbers
are not asserted: a 2-core machine is too noisy for timed tests; the README says which run."""

import sys

from conftest import ROOT, run


def rows(text: str) -> list[str]:
    """The first cell of every table row: what is measured, without the figures."""
    return [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]


def test_the_benchmark_prints_the_rows_of_the_readme_table():
    result = run([sys.executable, str(ROOT / "bench" / "bench.py"), "--quick"])
    assert result.returncode == 0, result.stdout + result.stderr
    performance = (ROOT / "README.md").read_text().split("## Performance")[1].split("\n## ")[0]
    # --quick makes 1,500 calls where the README's full run makes 10,000.
    assert rows(result.stdout) == [r.replace("10,000", "1,500") for r in rows(performance)]
