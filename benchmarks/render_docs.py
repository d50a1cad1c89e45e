"""Renders the benchmark figures into the docs from the JSON each benchmark wrote, and checks the docs.

`docs/benchmarks.md` gets a section per benchmark JSON in `docs/` (its command, date, machine, load, repeats and
spread first), and the README a summary table between its `<!-- benchmarks -->` markers. No figure is typed.

    python benchmarks/render_docs.py           # write them (`make docs`)
    python benchmarks/render_docs.py --check   # exit 1 when a doc differs from its JSON, a relative link is
                                               # broken, a measured figure sits outside the rendered text, or
                                               # a `make` target or skinexp command in the docs does not exist
                                               # (`make docs-check`)

Standard library only: it runs without the project installed.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import model_sections
import tool_sections
import training_sections
from sections import slug, table

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
BEGIN, END = "<!-- benchmarks: rendered by `make docs` from docs/*.json; do not edit -->", "<!-- /benchmarks -->"
# (JSON in docs/, renderer, the command that writes it when it is missing)
SECTIONS = [
    ("throughput.json", training_sections.throughput, "python benchmarks/throughput.py --repeats 3 --images 96"),
    ("backends.json", training_sections.backends, "make bench-backends"),
    ("precision.json", training_sections.precision, "make bench-precision"),
    ("quality_over_time.json", training_sections.quality, "make bench-quality"),
    ("noise.json", training_sections.noise, "python benchmarks/noise.py"),
    ("equal_compute.json", training_sections.equal_compute, "python benchmarks/equal_compute.py"),
    ("search_pruning.json", training_sections.search_pruning, "python benchmarks/search_pruning.py"),
    ("ablation.json", model_sections.ablation, "python benchmarks/ablation.py"),
    ("memory.json", tool_sections.memory, "python benchmarks/memory.py"),
    ("startup.json", tool_sections.startup, "python benchmarks/startup.py"),
    ("serve.json", tool_sections.serve, "make bench-serve"),
    ("server.json", tool_sections.server, "make bench-server"),
    ("gpu_check.json", training_sections.gpu_check, "bash benchmarks/gpu_check.sh on a GPU machine, its "
                                                    "gpu_check.json copied into docs/"),
]
# What a measured figure looks like: a rate, a latency, a size or a speed-up. Outside the rendered text only the
# phrases in ALLOWED may carry one: specifications and goals, not measurements.
MEASURED = re.compile(r"\b\d[\d,]*(\.\d+)?\s?(img/s|req/s|requests/s|metrics/s|[GT]FLOP/s|ms|MiB|GiB)\b"
                      r"|\b\d+\.\d+x\b|\b\d+x (faster|slower)\b"
                      r"|\b(about|took|takes|in|after) \d+(\.\d+)? ?(s|seconds|minutes|min)\b")
ALLOWED = ("790 TFLOP/s", "1,000 img/s", "23 MiB", "max_body_mb=64")


def load(name: str):
    path = DOCS / name
    return json.loads(path.read_text()) if path.is_file() else None


def render() -> dict[Path, str]:
    """{path: the text it should hold}."""
    sections, summary, missing = [], [], []
    for name, renderer, command in SECTIONS:
        result = load(name)
        if result is None:
            missing.append(f"- `docs/{name}`: not measured yet; `{command}` writes it.")
            continue
        extra = (load("throughput.json"),) if name == "backends.json" else ()
        heading, body, rows = renderer(result, *extra)
        sections.append((heading, body.rstrip() + "\n"))
        summary += rows
    contents = [f"- [{heading}](#{slug(heading)})" for heading, _ in sections]
    page = ["# Benchmarks", "",
            "Rendered by `make docs` from the JSON files the benchmarks write into `docs/`; never edited by hand "
            "(`make docs-check` fails when a figure here differs from its JSON). Each section starts with the "
            "command, the date, the machine (CPU model, its AVX-512 / bf16 flags, cores), the 1-minute load average "
            "while it ran (near 0: idle; near the core count: another job filled the machine) and the repeats. "
            "A verdict such as \"faster in every round\" is computed from the repeats, never typed.", "",
            *contents, ""]
    for heading, body in sections:
        page += [f"## {heading}", "", body]
    if missing:
        page += ["## Not measured here", "", *missing, ""]
    readme_table = "\n".join([BEGIN, table(["benchmark", "figure", "spread", "machine, date, load", "details"],
                                           summary), END])
    readme = (REPO / "README.md").read_text()
    if BEGIN in readme:
        readme = readme[:readme.index(BEGIN)] + readme_table + readme[readme.index(END) + len(END):]
    return {DOCS / "benchmarks.md": "\n".join(page).rstrip() + "\n", REPO / "README.md": readme}


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def broken_links(files: list[Path]) -> list[str]:
    """Relative links and images in `files` whose file, or whose #anchor in a Markdown file, does not exist."""
    problems = []
    for path in files:
        text = _without_code(path.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(REPO)}: {target}"
            if not resolved.exists():
                problems.append(f"{where}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                problems.append(f"{where}: no heading with that anchor")
    return problems


def _anchors(path: Path) -> set[str]:
    anchors, seen = set(), {}
    for line in _without_code(path.read_text()).splitlines():
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            count = seen.get(base, 0)
            anchors.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return anchors


def _without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def typed_figures(files: list[Path]) -> list[str]:
    """Lines outside the rendered text that carry a measured-looking figure (rates, latencies, sizes, speed-ups)."""
    problems = []
    for path in files:
        if path == DOCS / "benchmarks.md":
            continue
        text = path.read_text()
        if BEGIN in text:
            text = text[:text.index(BEGIN)] + text[text.index(END):]
        for line in text.splitlines():
            for allowed in ALLOWED:
                line = line.replace(allowed, "")
            match = MEASURED.search(line)
            if match:
                problems.append(f"{path.relative_to(REPO)}: \"{match.group(0)}\" in: {line.strip()[:100]}")
    return problems


def missing_commands(files: list[Path]) -> list[str]:
    """`make X` in the docs that the Makefile lacks, and skinexp commands that the docs and `--help` disagree on."""
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    text = "\n".join(path.read_text() for path in files)
    named = set(re.findall(r"(?:`|^)make ([a-z][\w-]*)", text, flags=re.M))  # `make X` and code lines
    problems = [f"`make {name}`: no such Makefile target" for name in sorted(named - targets)]
    python = REPO / ".venv" / "bin" / "python"
    if python.is_file():  # the commands `python -m skinexp --help` lists (it imports no TensorFlow)
        shown = subprocess.run([str(python), "-m", "skinexp", "--help"], capture_output=True, text=True, cwd=REPO)
        listed = set(re.findall(r"^  (\w+) ", shown.stdout.split("commands:")[-1], flags=re.M))
        readme = set(re.findall(r"python -m skinexp (\w+)", (REPO / "README.md").read_text()))
        problems += [f"`python -m skinexp {name}` is not a command" for name in sorted(readme - listed)]
        problems += [f"README.md does not mention `python -m skinexp {name}`" for name in sorted(listed - readme)]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the docs differ from the JSON or break")
    args = parser.parse_args()
    problems = []
    for path, text in render().items():
        if path.is_file() and path.read_text() == text:
            continue
        if args.check:
            problems.append(f"{path.relative_to(REPO)}: out of date with docs/*.json; run `make docs`")
        else:
            path.write_text(text)
    if args.check:
        files = markdown_files()
        problems += [f"broken link: {problem}" for problem in broken_links(files)]
        problems += [f"typed figure (render it from a JSON, or delete it): {problem}"
                     for problem in typed_figures(files)]
        problems += [f"command: {problem}" for problem in missing_commands(files)]
    for problem in problems:
        print(f"docs-check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
