"""docs/benchmarks.md's sections on the tools around training: memory, start-up, serving, the tracking server.

Each function takes a benchmark's JSON and returns (heading, body, summary rows for the README's table).
"""
from __future__ import annotations

from sections import link, provenance, ratio_verdict, short_machine, span, spread_text, table


def memory(result: dict):
    heading = "Peak memory of training (`benchmarks/memory.py`)"
    meta, sides = result["meta"], result["sides"]
    descriptions = {
        "notebook": "`np.load`, `astype(float32)`, `/255`, `fit` on arrays",
        "skinexp": "npy source (memory-mapped) + skinexp's pipeline",
        "skinexp-slices": "the same source through `tf.data.Dataset.from_tensor_slices` (the pipeline before)",
        "model-only": "TensorFlow, the model and its training step on 16 images: the floor",
    }
    rows = [[side, descriptions.get(side, ""), spread_text(row["peak_mib"], 0), f"{row['seconds']['median']:.0f}"]
            for side, row in sides.items()]
    lines = [provenance(meta), "",
             f"{result['images']:,} images at {result['image_size']} px in the notebook's `.npy` layout "
             f"({result['data_gib']:.2f} GiB uint8; ISIC 2018's size), the same small U-Net "
             f"(`{' '.join(result['model'])}`), {result['steps']} steps of batch {result['batch']}; each side in a "
             "fresh process, its peak resident set size (`ru_maxrss`).", "",
             table(["side", "what it does", "peak RSS MiB, median (range, n)", "seconds"], rows)]
    summary = []
    if "skinexp_over_notebook" in result:
        ratio = result["skinexp_over_notebook"]
        met = ratio["max"] <= 1 / 3
        lines += ["", f"skinexp / notebook: {spread_text(ratio)} (goal <= 1/3: "
                  f"{'met in every round' if met else 'not met in every round'})."]
        summary = [["peak memory, skinexp / notebook (ISIC 2018 scale)", f"{ratio['median']:.2f}",
                    f"{span([ratio['min'], ratio['max']])}, n {ratio['n']}", short_machine(meta), link(heading)]]
    return heading, "\n".join(lines), summary


def startup(result: dict):
    heading = "Start-up (`benchmarks/startup.py`)"
    meta, commands = result["meta"], result["commands"]
    rows = [[f"`{name}`", spread_text(row["seconds"]), f"{row['vs_import_tensorflow']:.2f}x "
             f"({span(row['ratio_range'])})",
             "" if row["goal_met"] is None else ("met" if row["goal_met"] else "missed")]
            for name, row in commands.items()]
    goal = result["goal_seconds"]
    lines = [provenance(meta), "",
             f"Each command in a fresh process, interleaved within each of {meta['repeats']} rounds; goal: `--help` "
             f"and a rejected override answer in under {goal} s (median), without importing TensorFlow.", "",
             table(["command", "seconds, median (range, n)", "vs `import tensorflow` (median of rounds; range)",
                    f"goal < {goal} s"], rows)]
    fast = [name for name, row in commands.items() if row["goal_met"] is not None]
    summary = [["start-up: " + " / ".join(f"`{name.replace('python -m skinexp ', '')}`" for name in fast),
                " / ".join(f"{commands[name]['seconds']['median']:.2f} s" for name in fast),
                f"goal < {goal} s: " + ("met" if all(commands[name]["goal_met"] for name in fast) else "missed"),
                short_machine(meta), link(heading)]]
    return heading, "\n".join(lines), summary


def serve(result: dict):
    heading = "Serving latency (`benchmarks/serve.py`)"
    meta, summary = result["meta"], result["summary"]
    sides, ratio = summary["sides"], summary["serve_over_in_process"]
    rows = [[result["sides"][name], spread_text(row["requests_per_s"], 1), spread_text(row["median_ms"], 1),
             f"{row['p95_ms_all_requests']:.1f}"] for name, row in sides.items()]
    overhead = sides["serve"]["median_ms"]["median"] - sides["in-process"]["median_ms"]["median"]
    lines = [provenance(meta), "",
             f"One {result['image']} per request, sequential, the same run (a small {result['model_image_size']} px "
             "U-Net trained by the script) through the endpoint and through predict's steps in-process; after 3 "
             f"warm-up requests per side, {meta['repeats']} rounds of {result['requests_per_round']} requests to "
             "each side in turn.", "",
             table(["path", "requests/s, median of rounds (range, n)", "median ms, median of rounds (range, n)",
                    "p95 ms, all requests"], rows), "",
             f"The endpoint's median latency is {ratio['median']:.2f}x the in-process one (rounds "
             f"{span([ratio['min'], ratio['max']])}), about "
             f"{overhead:.0f} ms per request for HTTP, JSON and base64; the endpoint: "
             f"{ratio_verdict([ratio['min'], ratio['max']], 'slower', 'faster')}."]
    summary_rows = [["serving: `serve` / in-process median latency, one 600x450 JPEG", f"{ratio['median']:.2f}x",
                     f"rounds {span([ratio['min'], ratio['max']])}: the endpoint "
                     f"{ratio_verdict([ratio['min'], ratio['max']], 'slower', 'faster')}", short_machine(meta),
                     link(heading)]]
    return heading, "\n".join(lines), summary_rows


def server(result: dict):
    heading = "Tracking server throughput (`benchmarks/server.py`)"
    meta, stores = result["meta"], result["stores"]
    rows = [[name, spread_text(row["metrics_per_s"], 0), f"{row['batches_per_s']:.1f}",
             f"{row['vs_sqlite']:.2f}x ({span(row['vs_sqlite_range'])})"] for name, row in stores.items()]
    remote = next(row for name, row in stores.items() if name.startswith("server"))
    lines = [provenance(meta), "",
             f"{result['runs']} runs x {result['batches_per_run']} batches x {result['metrics_per_batch']} metrics "
             "logged through `skinexp.tracking` as training logs them (one batch per epoch), into a local SQLite "
             "file and through `python -m skinexp server` (PostgreSQL, logins), the two stores alternating within "
             "each repeat.", "",
             table(["store", "metrics/s, median (range, n)", "batches/s (mean)",
                    "vs SQLite (median of repeats; range)"], rows), "",
             f"About {1000 / remote['batches_per_s']:.0f} ms per batch through the server (HTTP, the login and "
             "permission checks, a PostgreSQL commit), against one batch per training epoch."]
    summary = [["tracking: server / SQLite metrics/s", f"{remote['vs_sqlite']:.2f}x",
                f"repeats {span(remote['vs_sqlite_range'])}", short_machine(meta), link(heading)]]
    return heading, "\n".join(lines), summary
