"""Shared pieces of the rendered docs: where a figure came from, spreads, and verdicts computed from the data.

Every function takes what a benchmark wrote (its JSON) and returns Markdown; no figure is typed here. A verdict
("resolved", "met") is computed from the repeats, never asserted: a ratio is resolved only when every round
falls on the same side of 1.
"""
from __future__ import annotations

import re
import statistics

BENCHMARKS_MD = "docs/benchmarks.md"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def link(heading: str, text: str | None = None, page: str = BENCHMARKS_MD) -> str:
    """A link to a section of docs/benchmarks.md, shown by default as the script's name in the heading."""
    script = re.search(r"`benchmarks/(\w+)\.py`", heading)
    return f"[{text or (script.group(1) if script else heading)}]({page}#{slug(heading)})"


def machine(meta: dict) -> str:
    """"Intel(R) Xeon(R) Processor, 2 cores, amx_bf16 avx512_bf16 avx512f" (or what was not recorded)."""
    found = meta.get("machine") or {}
    cpu = found.get("cpu") or "CPU model not recorded"
    flags = found.get("flags")
    shown = "flags not recorded" if flags is None else (" ".join(f for f in flags if f != "avx2") or "no AVX-512")
    return f"{cpu}, {found.get('cores', '?')} cores, {shown}"


def load(meta: dict) -> str:
    start, end = meta.get("load_1min_at_start"), meta.get("load_1min_at_end")
    if start is None:
        return "load not recorded"
    cores = (meta.get("machine") or {}).get("cores") or "?"
    return f"1-min load {start:.1f} at start, {end:.1f} at end, on {cores} cores"


def provenance(meta: dict) -> str:
    """The line under each section's heading: command, date, commit, machine, load, repeats."""
    line = (f"`{meta['command']}`, {meta['date']}{code(meta)}; {machine(meta)}; {load(meta)}; "
            f"{meta['repeats']} repeat{'s' if meta['repeats'] != 1 else ''}.")
    if meta.get("provenance"):
        line += f" Metadata: {meta['provenance']}."
    return line


def code(meta: dict) -> str:
    """", commit b99735b" (", commit b99735b with uncommitted changes"), or nothing where none was recorded."""
    if not meta.get("commit"):
        return ""
    return f", commit {meta['commit']}" + (" with uncommitted changes" if meta.get("uncommitted_changes") else "")


def short_machine(meta: dict) -> str:
    found = meta.get("machine") or {}
    cpu = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b", "", found.get("cpu") or "").strip() or "CPU not recorded"
    start = meta.get("load_1min_at_start")
    return f"{cpu}, {meta['date']}, load {start:.1f}" if start is not None else f"{cpu}, {meta['date']}"


def span(values, digits: int = 2, unit: str = "") -> str:
    values = list(values)
    return f"{min(values):.{digits}f}..{max(values):.{digits}f}{unit}"


def spread_text(spread: dict, digits: int = 2, unit: str = "") -> str:
    """"9.97 (5.95..11.03, n 3)" from machine.spread()'s dict."""
    low, high = spread["min"], spread["max"]
    return f"{spread['median']:.{digits}f}{unit} ({low:.{digits}f}..{high:.{digits}f}, n {spread['n']})"


def ratio_verdict(ratios: list[float], faster: str, slower: str) -> str:
    """Whether repeated ratios resolve a direction: every round above 1 (`faster`), below (`slower`), or not."""
    if all(r > 1 for r in ratios):
        return f"{faster} in every round"
    if all(r < 1 for r in ratios):
        return f"{slower} in every round"
    return "not resolved: the rounds fall on both sides of 1"


def overlap(first: list[float], second: list[float]) -> bool:
    return min(first) <= max(second) and min(second) <= max(first)


def median(values) -> float:
    return statistics.median(list(values))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
