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


def test_a_budget_repeated_over_seeds_states_its_mean_sd_and_t_interval_against_the_goal():
    """quality.py --seeds --add-to: three seeds of 0.85, 0.86, 0.87 are a mean of 0.860 and an sd of 0.010; Student
    t with 2 degrees of freedom (4.303) puts the 95 % interval at 0.860 -+ 0.0248. The docs say where it lies."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import quality
        import training_sections
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    over = quality.over_seeds([0.85, 0.86, 0.87])
    assert over["n"] == 3 and abs(over["mean"] - 0.86) < 1e-12 and abs(over["sd"] - 0.01) < 1e-12
    assert [round(bound, 4) for bound in over["t_interval"]] == [0.8352, 0.8848]
    run = {"minutes": 20.0, "training_minutes": 20.0, "train_steps": 3000, "test_mean_iou": 0.85,
           "test_mean_iou_tta_largest": 0.851}
    repeats = {"meta": {"command": "python benchmarks/quality.py --budgets 20 --seeds 1,2 --add-to x.json",
                        "date": "2026-12-07", "repeats": 2, "load_1min_at_start": 0.1, "load_1min_at_end": 1.9},
               "minutes": 20.0, "seeds": [42, 1, 2],
               "runs": [{**run, "test_mean_iou": 0.86}, {**run, "test_mean_iou": 0.87}],
               "test_mean_iou": over, "test_mean_iou_tta_largest": quality.over_seeds([0.851, 0.852, 0.853])}
    text = "\n".join(training_sections.seed_repeats(repeats, [run], 0.86))
    assert "| 42 | 20.0 | 3,000 | 0.850 |" in text and "| 2 | 20.0 | 3,000 | 0.870 |" in text
    assert ("Test IoU: mean 0.860 over the n = 3 seeds, sd 0.010, Student t 95 % interval 0.835..0.885; mean minus "
            "goal +0.000 (the interval holds the goal)." in text)
    assert "interval 0.850..0.854; mean minus goal -0.008 (the whole interval is below the goal)" in text
    budget = {**run, "epochs": 60, "images_seen": 24000, "training_gflop": 40000.0, "val_image_iou": 0.85,
              "wall_minutes": 22.0, "test_mean_iou": 0.865}
    result = {"meta": {**repeats["meta"], "machine": {"cpu": "Xeon", "flags": ["amx_bf16"], "cores": 2}},
              "recipe": ["+experiment=isic_cpu"], "goal": 0.86, "budgets": [budget],
              "seed_repeats": {**repeats, "test_mean_iou": quality.over_seeds([0.865, 0.85, 0.855])}}
    _, body, summary = training_sections.quality(result)
    assert "is not met here (this CPU has bf16): 0.857, the mean over the 3 training seeds below." in body
    assert summary[0][1] == "0.857" and "not met by the mean" in summary[0][2]  # the first seed's 0.865 alone met it
