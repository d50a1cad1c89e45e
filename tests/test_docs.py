"""The docs' figures come from the benchmarks' JSON: `make docs-check` in the default suite, so a commit that edits
a figure by hand, or a JSON without rendering the docs, fails CI."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import REPO


def test_the_docs_match_their_benchmark_json_and_their_links_resolve():
    result = subprocess.run([sys.executable, "benchmarks/render_docs.py", "--check"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_figure_typed_into_the_rendered_docs_is_caught(tmp_path):
    copy = tmp_path / "repo"
    for folder in ("benchmarks", "docs"):
        shutil.copytree(REPO / folder, copy / folder)
    for name in ("README.md", "Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, copy / name)
    shutil.copytree(REPO / "skinexp", copy / "skinexp")
    check = [sys.executable, "benchmarks/render_docs.py", "--check"]
    assert subprocess.run(check, cwd=copy, capture_output=True, timeout=120).returncode == 0  # the copy alone passes
    benchmarks = copy / "docs" / "benchmarks.md"
    text = benchmarks.read_text()
    figure = re.search(r"\| (\d+\.\d*)(\d) \|", text)  # the first decimal figure in a rendered table
    typed = f"| {figure.group(1)}{(int(figure.group(2)) + 1) % 10} |"
    benchmarks.write_text(text[:figure.start()] + typed + text[figure.end():])
    result = subprocess.run(check, cwd=copy, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "benchmarks.md" in result.stdout + result.stderr


def test_a_benchmark_records_the_commit_it_ran_from_and_the_docs_name_it(tmp_path):
    """machine.metadata() takes the checkout's HEAD and whether tracked files differed from it; the line under a
    section's heading names them, so a figure points at the code (a recipe's YAML included) that produced it."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import machine
        import sections
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
    meta = machine.metadata(3, ["benchmarks/quality.py", "--budgets", "5"])
    assert meta["commit"] == head and meta["repeats"] == 3
    assert meta["command"] == "python benchmarks/quality.py --budgets 5"
    clean = {**meta, "commit": "abc1234", "uncommitted_changes": False, "load_1min_at_end": 0.5}
    assert ", commit abc1234;" in sections.provenance(clean)
    dirty = {**clean, "uncommitted_changes": True}
    assert ", commit abc1234 with uncommitted changes;" in sections.provenance(dirty)
    before = {key: value for key, value in clean.items() if key not in ("commit", "uncommitted_changes")}
    assert "commit" not in sections.provenance(before)  # a JSON written before commits were recorded
