"""docs/benchmarks.md's sections on training: throughput, backends, precision, quality, noise, search, the GPU.

Each function takes a benchmark's JSON and returns (heading, body, summary rows for the README's table).
"""
from __future__ import annotations

from sections import link, median, overlap, provenance, ratio_verdict, short_machine, span, spread_text, table

BASELINE = "notebook (float32 arrays into fit)"
DEFAULT = "skinexp auto (default)"
PIPELINE = "pipeline only (augment=light, no model)"
DESCRIPTIONS = {
    "synthetic": "the default U-Net (16 filters), 128 px, batch 8, synthetic images",
    "real": "the notebook's U-Net (`model=unet_seed`) at 8 filters, 128 px, batch 4, the real images",
}


def _per_round(samples: dict, side: str, over: str) -> list[float]:
    return [a["img_s"] / b["img_s"] for a, b in zip(samples[side], samples[over])]


def throughput(result: dict):
    heading = "Training throughput (`benchmarks/throughput.py`)"
    meta, summary, samples = result["meta"], result["summary"], result["samples"]
    probe = summary["probe_gflop_s"]
    args = result["args"]
    lines = [provenance(meta), "",
             f"Each side in a fresh process: 1 warm-up epoch, then {args['epochs']} timed epochs of {args['images']} "
             f"images; the sides interleaved (A, B, C, ..., A, B, C, ...) over {meta['repeats']} rounds. The machine's "
             f"limit, measured in the same run: a 3x3, 64-channel convolution (batch 8, 128 px) at "
             f"{spread_text({**probe['float32'], 'n': meta['repeats']}, 0)} GFLOP/s in float32 and "
             f"{spread_text({**probe['bfloat16'], 'n': meta['repeats']}, 0)} in bfloat16.", ""]
    auto = {row.get("precision") for rows in summary["workloads"].values() for side, row in rows.items()
            if side.startswith("skinexp auto")}
    if auto == {"float32"}:
        lines += ["`train.precision=auto` resolved to float32 on this machine (no native bf16), so the "
                  "\"skinexp auto\" sides are float32 runs of the same code as \"skinexp float32\".", ""]
    rows, summary_rows = [], []
    for workload, sides in summary["workloads"].items():
        for number, (side, row) in enumerate(sides.items()):
            first = f"{workload}: {DESCRIPTIONS.get(workload, workload)}" if number == 0 else ""
            ratios = _per_round(samples[workload], side, BASELINE) if side != PIPELINE else []
            rows.append([first, side, f"{row['median_img_s']:.2f}", span([row["min_img_s"], row["max_img_s"]]),
                         f"{median(ratios):.2f}x ({span(ratios)})" if ratios and side != BASELINE else "",
                         f"{row['fraction_of_limit']:.0%}" if "fraction_of_limit" in row else ""])
        ratios = _per_round(samples[workload], DEFAULT, BASELINE)
        summary_rows.append([f"training img/s, skinexp default / notebook ({workload})",
                             f"{median(ratios):.2f}x", f"rounds {span(ratios)}: "
                             f"{ratio_verdict(ratios, 'faster', 'slower')}", short_machine(meta), link(heading)])
    lines += [table(["workload", "side", "img/s (median)", "range", "vs notebook (median of rounds; range)",
                     "of the limit"], rows), ""]
    for workload, sides in summary["workloads"].items():
        training = sides[DEFAULT]["median_img_s"]
        alone = sides[PIPELINE]["median_img_s"] / training
        default = _per_round(samples[workload], DEFAULT, BASELINE)
        xla = _per_round(samples[workload], "skinexp auto + XLA", DEFAULT)
        same_code = [r["img_s"] for side in ("skinexp float32", DEFAULT) for r in samples[workload][side]]
        lines += [f"- {workload}: the input pipeline alone delivers {alone:.0f}x what default training consumes "
                  f"(goal >= 5x: {'met' if alone >= 5 else 'not met'}); skinexp's default against the notebook's loop: "
                  f"{ratio_verdict(default, 'faster', 'slower')} (goal >= 2.0x: "
                  f"{'met' if min(default) >= 2 else 'not met'}); XLA against none: "
                  f"{ratio_verdict(xla, 'faster', 'slower')}; the float32 and auto sides, the same code here, range "
                  f"over {max(same_code) / min(same_code):.1f}x between rounds."]
    repeated = _repeated_rates(samples)
    if repeated:
        lines += [f"- {repeated} timed sides repeat another side's img/s to within 0.1 %, across different models: "
                  "the machine handed out CPU time in slices, so absolute img/s differ between runs by more than "
                  "within one; read the ratios of one run's interleaved rounds, never a single round."]
    return heading, "\n".join(lines), summary_rows


def _repeated_rates(samples: dict) -> int:
    rates = [r["img_s"] for name, sides in samples.items() if name != "probe"
             for side, runs in sides.items() if side != PIPELINE for r in runs]
    return sum(any(j != i and abs(rates[j] / rate - 1) < 0.001 for j in range(len(rates)))
               for i, rate in enumerate(rates))


def backends(result: dict, throughput_result: dict | None = None):
    heading = "TensorFlow against JAX (`benchmarks/backends.py`)"
    meta, samples = result["meta"], result["samples"]
    rates = {backend: [r["img_s"] for r in runs] for backend, runs in samples.items()}
    ratios = [j / t for j, t in zip(rates["jax"], rates["tensorflow"])]
    lines = [provenance(meta), "",
             f"The default U-Net, {result['args']['images']} synthetic images at 128 px, batch 8, "
             f"{samples['jax'][0]['precision']} (`auto` there), XLA on both, each side in a fresh process, "
             f"{meta['repeats']} interleaved rounds of {result['args']['epochs']} timed epochs after a warm-up epoch.",
             "", table(["backend", "img/s (median)", "range"],
                       [[name, f"{median(values):.2f}", span(values)] for name, values in
                        (("TensorFlow (tf.data)", rates["tensorflow"]), ("JAX (PyDataset)", rates["jax"]))]), "",
             f"JAX / TensorFlow: {median(ratios):.2f}x (rounds {span(ratios)}): JAX "
             f"{ratio_verdict(ratios, 'faster', 'slower')}."]
    if throughput_result:
        same = throughput_result["samples"].get("synthetic", {}).get("skinexp auto + XLA", [])
        if same:
            there = [r["img_s"] for r in same]
            lines += ["", f"The TensorFlow side is the workload of `throughput.json`'s \"skinexp auto + XLA\" "
                      f"(synthetic) side, measured in another run: {median(there):.2f} img/s there ({span(there)}) "
                      f"against {median(rates['tensorflow']):.2f} here. "
                      + ("The ranges do not overlap: " if not overlap(there, rates["tensorflow"]) else "")
                      + "absolute img/s are not comparable across runs on a shared machine; only each run's "
                      "interleaved ratio is."]
    summary = [["JAX / TensorFlow img/s, same training", f"{median(ratios):.2f}x",
                f"rounds {span(ratios)}: JAX {ratio_verdict(ratios, 'faster', 'slower')}", short_machine(meta),
                link(heading)]]
    return heading, "\n".join(lines), summary


def precision(result: dict):
    heading = "bf16 against float32 (`benchmarks/precision.py`)"
    meta, runs = result["meta"], result["runs"]
    score = "val_image_iou" if "val_image_iou" in runs[0] else "best_val_iou"
    lines = [provenance(meta), "", f"One sweep, `train.precision` x `train.seed`, on `{' '.join(result['config'])}`; "
             f"compared with `python -m skinexp compare ... group_by=train.precision`. Quantity: {result['quantity']}.",
             "", table(["precision", "seed", score, "best epoch", "img/s" if "images_per_sec" in runs[0] else "run"],
                       [[r["precision"], str(r["seed"]), f"{r[score]:.3f}", str(int(r["best_epoch"])),
                         f"{r['images_per_sec']:.1f}" if "images_per_sec" in r else r["run_id"][:8]] for r in runs]),
             ""]
    groups = result["comparison"]
    interval = "Student t" if "sd" in groups[0] else "bootstrap over images"
    lines += [table(["group", "runs", "mean", f"95 % interval ({interval})", "p vs the best", "verdict"],
                    [[g["group"], str(g["runs"]), f"{float(g['mean']):.3f}",
                      f"{float(g['ci95_low']):.3f}..{float(g['ci95_high']):.3f}",
                      f"{float(g['p_value']):.2g}" if g.get("p_value") not in (None, "") else "", g["verdict"]]
                     for g in groups]), ""]
    if result.get("comparison_note"):
        lines += [result["comparison_note"] + ".", ""]
    for name in sorted({r["precision"] for r in runs}):
        mine = sorted(runs, key=lambda r: r[score])
        mine = [r for r in mine if r["precision"] == name]
        gaps = [r[score] - mine[0][score] for r in mine[1:]]
        if gaps:
            lines += [f"- {name}: its lowest run (seed {mine[0]['seed']}, {mine[0][score]:.3f}) is {span(gaps)} below "
                      f"its other seeds."]
    if "speed" in result:
        for name, speed in result["speed"].items():
            lines += [f"- {name}: {spread_text(speed['images_per_sec'], 1)} training img/s, "
                      f"{spread_text(speed['minutes'], 1)} minutes a run."]
    if "speed" not in result:
        lines += ["- This JSON holds no training speed, so no speed of bf16 against float32 is claimed from it."]
    worse = [g for g in groups if g["verdict"] not in ("best", "reference")]
    summary = [["bf16 / float32: quality", " / ".join(f"{float(g['mean']):.3f}" for g in groups),
                "; ".join(f"{g['group'].split('=')[-1]}: {g['verdict']}" for g in worse), short_machine(meta),
                link(heading)]]
    return heading, "\n".join(lines), summary


def quality(result: dict):
    heading = "Held-out IoU against training minutes (`benchmarks/quality.py`)"
    meta, goal = result["meta"], result["goal"]
    budgets = sorted(result["budgets"], key=lambda budget: budget["minutes"])
    rows = [[f"{b['minutes']:g}", f"{b['training_minutes']:.1f}", f"{b['train_steps']:,}", str(b["epochs"]),
             f"{b['images_seen']:,}", f"{b['training_gflop']:,.0f}", f"{b['val_image_iou']:.3f}",
             with_interval(b["test_mean_iou"], b.get("test_iou_interval")),
             with_interval(b["test_mean_iou_tta_largest"], b.get("test_iou_tta_largest_interval")),
             f"{b['wall_minutes']:.1f}"]
            for b in budgets]
    longest = max(budgets, key=lambda budget: budget["minutes"])
    met = longest["test_mean_iou"] >= goal
    bf16 = any(flag in (meta.get("machine") or {}).get("flags", []) for flag in ("avx512_bf16", "amx_bf16"))
    repeats = result.get("seed_repeats")
    seeds = repeats["test_mean_iou"] if repeats and repeats["minutes"] == longest["minutes"] else None
    if seeds:  # the mean over the training seeds decides, not the first seed's run
        met = seeds["mean"] >= goal
        found = f"{seeds['mean']:.3f}, the mean over the {seeds['n']} training seeds below"
    else:
        found = f"{longest['test_mean_iou']:.3f}"
    verdict = (f"The goal, mean per-image test IoU >= {goal} within {longest['minutes']:g} training minutes on a "
               f"processor with bf16, is {'met' if met else 'not met'} here "
               f"({'this CPU has bf16' if bf16 else 'this CPU has no bf16, so the goal does not apply to it'}): "
               f"{found}.")
    distance = goal_distance(longest, goal)
    if seeds and distance:
        distance = f"This run alone, {longest['test_mean_iou']:.3f}: {distance[0].lower()}{distance[1:]}"
    verdict = " ".join(filter(None, [verdict, distance]))
    body = "\n".join([
        provenance(meta), "",
        f"`python -m skinexp train {' '.join(result['recipe'])} train.budget.minutes=M`, one run per budget, "
        "the longest first, on the recipe's fixed split of the real images (15 % val, 15 % held-out test, seed 0). "
        "The run turns its minutes into optimizer steps from a probe of its step time, and its cosine schedule "
        "decays over them. Test IoU: mean per-image IoU of the kept checkpoint on the held-out images at the run's "
        "tuned threshold (`evaluate split=test`); then with `tta=true postprocess=largest_component`. Training "
        "minutes exclude validation, the probe and start-up, which the wall minutes include.", "",
        table(["budget min", "training min", "steps", "epochs", "images seen", "training GFLOP", "val image IoU",
               "test IoU" + (" (95 % interval)" if longest.get("test_iou_interval") else ""),
               "test IoU, TTA + largest component", "wall min"], rows), "",
        f"{verdict} One run per budget ({meta['repeats']} repeat): "
        + ("the intervals are over the test images, not over training seeds; " if longest.get("test_iou_interval")
           else "no spread; ")
        + "the noise benchmark's seed-to-seed sd is the yardstick for a difference between budgets.", "",
        "Training minutes against the budget: "
        + ", ".join(f"{100 * (b['training_minutes'] / b['minutes'] - 1):+.0f} % at {b['minutes']:g} min"
                    for b in budgets) + ".", "", *plans(budgets), *probe_check(result.get("probe_check")),
        *seed_repeats(repeats, budgets, goal),
        "![held-out IoU against training minutes](quality_over_time.png)"])
    if repeats:
        over = repeats["test_mean_iou"]
        low, high = over["t_interval"]
        summary = [[f"isic_cpu, {repeats['minutes']:g} training minutes: test mean per-image IoU, mean of "
                    f"{over['n']} training seeds", f"{over['mean']:.3f}",
                    f"sd {over['sd']:.3f}, t 95 % interval {low:.3f}..{high:.3f}; goal {goal}: "
                    f"{'met' if over['mean'] >= goal else 'not met'} by the mean", short_machine(repeats["meta"]),
                    link(heading)]]
        return heading, body, summary
    interval = longest.get("test_iou_interval")
    spread = (f"95 % interval {interval[0]:.3f}..{interval[1]:.3f}, n {longest['test_images']} images; "
              if interval else "")
    summary = [[f"isic_cpu, {longest['minutes']:g} training minutes: test mean per-image IoU",
                f"{longest['test_mean_iou']:.3f}", spread + f"goal {goal}: {'met' if met else 'not met'}; one run",
                short_machine(meta), link(heading)]]
    return heading, body, summary


def seed_repeats(repeats: dict | None, budgets: list[dict], goal: float) -> list[str]:
    """One budget run again with other training seeds (`quality.py --seeds --add-to`): each run, and the budget's
    mean over all its seeds with a Student t interval, against the goal."""
    if not repeats:
        return []
    first = next(b for b in budgets if b["minutes"] == repeats["minutes"])
    rows = [[str(seed), f"{run['training_minutes']:.1f}", f"{run['train_steps']:,}",
             with_interval(run["test_mean_iou"], run.get("test_iou_interval")),
             with_interval(run["test_mean_iou_tta_largest"], run.get("test_iou_tta_largest_interval"))]
            for seed, run in zip(repeats["seeds"], [first, *repeats["runs"]])]
    lines = []
    for key, what in (("test_mean_iou", "Test IoU"), ("test_mean_iou_tta_largest", "With TTA + largest component")):
        over = repeats[key]
        low, high = over["t_interval"]
        where = ("the whole interval is above the goal" if low > goal else "the whole interval is below the goal"
                 if high < goal else "the interval holds the goal")
        lines.append(f"{what}: mean {over['mean']:.3f} over the n = {over['n']} seeds, sd {over['sd']:.3f}, "
                     f"Student t 95 % interval {low:.3f}..{high:.3f}; mean minus goal {over['mean'] - goal:+.3f} "
                     f"({where}).")
    return [f"The {repeats['minutes']:g}-minute budget again with other training seeds (`train.seed`), the rest of "
            f"the recipe and the split unchanged: {provenance(repeats['meta'])} The first row is the run above.", "",
            table(["train.seed", "training min", "steps", "test IoU (95 % interval over the images)",
                   "test IoU, TTA + largest component"], rows), "", " ".join(lines), ""]


def with_interval(mean: float, interval) -> str:
    """`0.854 (0.831-0.874)`, or the mean alone from a JSON written before intervals were recorded."""
    return f"{mean:.3f} ({interval[0]:.3f}-{interval[1]:.3f})" if interval else f"{mean:.3f}"


def goal_distance(budget: dict, goal: float) -> str:
    """The gap to the goal with its interval over the test images, from a JSON that records one."""
    if not budget.get("test_iou_interval"):
        return ""
    low, high = budget["test_iou_interval"]
    gap, gap_low, gap_high = budget["test_mean_iou"] - goal, low - goal, high - goal
    where = ("the whole interval is above it" if gap_low > 0 else "the whole interval is below it" if gap_high < 0
             else "the interval holds it, so these images cannot tell the recipe from the goal")
    return (f"Mean minus goal: {gap:+.3f}, 95 % bootstrap interval {gap_low:+.3f} to {gap_high:+.3f} over the "
            f"n = {budget['test_images']} test images ({where}).")


def plans(budgets: list[dict]) -> list[str]:
    """How each run's minutes budget was revised as it went, when the JSON records its plan."""
    planned = [b for b in budgets if b.get("budget_plan")]
    if not planned:
        return []
    return ["The probe's plan and the run's revisions of it (`train.budget_plan`): " + "; ".join(
        f"{b['minutes']:g} min: {b['budget_plan'][0][1]:,} steps planned, "
        + (f"revised {len(b['budget_plan']) - 1} times to {b['budget_plan'][-1][1]:,}" if len(b["budget_plan"]) > 1
           else "not revised") for b in planned) + ".", ""]


def probe_check(check: dict | None) -> list[str]:
    """A later run of one budget that checks the minutes probe, when the JSON holds one."""
    if not check:
        return []
    meta, trained = check["meta"], check["training_minutes"]
    return [f"A later run, with {meta['provenance']}: `{meta['command']}` ({short_machine(meta)}): "
            f"{check['minutes']:g} budget minutes trained {trained:.1f} "
            f"({100 * (trained / check['minutes'] - 1):+.0f} %), {check['train_steps']:,} steps, "
            f"test IoU {check['test_mean_iou']:.3f}.", ""]


def equal_compute(result: dict):
    heading = "Three widths at one GFLOP budget (`benchmarks/equal_compute.py`)"
    meta, widths, reference = result["meta"], result["widths"], str(result["reference"])
    rows = []
    for width, row in widths.items():
        low, high = row["diff_ci95"]
        diff = "" if row["diff"] is None else f"{row['diff']:+.3f} [{low:.3f}, {high:.3f}]"
        rows.append([width, f"{row['training_gflop_per_image']:.3f}", f"{row['train_steps']:,}",
                     f"{median(row['images_seen']):,.0f}", f"{median(row['training_gflop']):,.0f}",
                     f"{row['mean']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]", diff,
                     "" if row["p_value"] is None else f"{row['p_value']:.3g}", row["verdict"]])
    found = "; ".join(f"{width} filters: {row['verdict']} ({row['diff']:+.3f})" for width, row in widths.items()
                      if width != reference)
    body = "\n".join([
        provenance(meta), "",
        f"`python -m skinexp train -m {' '.join(result['settings'])} model.filters=8,16,32`, then `python -m skinexp "
        f"compare sweep=widths baseline=model.filters={reference}`: every width trains "
        f"{result['gflop_budget']:,.0f} GFLOP, so a narrower U-Net sees more images. Mean per-image IoU of the "
        f"{widths[reference]['images']} out-of-fold images; diff against {reference} filters with its paired "
        "bootstrap 95 % interval, the Holm-adjusted Wilcoxon p-value and the verdict.", "",
        table(["filters", "training GFLOP / image", "steps", "images seen (median run)", "training GFLOP (median run)",
               "mean IoU [95 % CI]", "diff [95 % CI]", "p (Holm)", "verdict"], rows), "",
        f"Against {reference} filters at equal compute: {found}."])
    summary = [[f"widths 8 / 16 / 32 at {result['gflop_budget']:,.0f} GFLOP, 3-fold CV",
                " / ".join(f"{row['mean']:.3f}" for row in widths.values()), found, short_machine(meta),
                link(heading)]]
    return heading, body, summary



def noise(result: dict):
    heading = "Noise: seeds and folds (`benchmarks/noise.py`)"
    meta = result["meta"]
    seeds, folds = result["val_image_iou"]["seeds"], result["val_image_iou"]["folds"]
    shifts, mdd, images = result["smallest_resolved_difference"], result["mdd"], result["images"]
    settings = result["settings"]
    low, high = shifts["five_fold_range"]
    body = "\n".join([
        provenance(meta), "",
        f"The real images at {settings['size']} px, an {settings['model.filters']}-filter U-Net, {settings['epochs']} "
        "epochs. The quantity is `compare`'s: each run's mean per-image IoU of its kept checkpoint at threshold 0.5 "
        "(`val_image_iou`).", "",
        table(["", f"one split ({images['single_split_val']} val images), {len(seeds)} seeds",
               f"{len(folds)} folds ({images['out_of_fold']} out-of-fold images)"], [
            ["val_image_iou of the runs", ", ".join(f"{v:.3f}" for v in seeds), ", ".join(f"{v:.3f}" for v in folds)],
            ["sd across runs", f"{result['sd_across_seeds']:.3f}", f"{result['sd_across_folds']:.3f}"],
            ["`mdd` (80 % power, p < 0.05)", f"{mdd['single_split']:.3f}",
             f"{mdd['five_fold_median']:.3f} (median of 50 resamples)"],
            ["smallest shift the Wilcoxon test resolves", f"{shifts['single_split']:.3f}",
             f"{shifts['five_fold_median']:.3f} ({low:.3f}-{high:.3f} over 50 resamples)"]]), "",
        f"Per-image differences between two seeds on one split: sd {result['per_image_seed_difference_sd']:.3f}, "
        f"median {result['per_image_seed_difference_median']:+.3f}."])
    summary = [[f"noise: `mdd` on one split / {len(folds)} folds",
                f"{mdd['single_split']:.3f} / {mdd['five_fold_median']:.3f}",
                f"sd of val_image_iou over {len(seeds)} seeds {result['sd_across_seeds']:.3f}", short_machine(meta),
                link(heading)]]
    return heading, body, summary


def search_pruning(result: dict):
    heading = "Does pruning pay? (`benchmarks/search_pruning.py`)"
    meta, summary, runs = result["meta"], result["summary"], result["runs"]
    keys = ("wall_seconds", "epochs_trained", "best_val_image_iou", "trials_pruned")
    values = {p: {k: [r[k] for r in runs if r["pruner"] == p] for k in keys} for p in summary}
    pruned, plain = values["hyperband"], values["none"]
    rows = [[p, f"{s['wall_seconds']['mean']:.0f} ({span(values[p]['wall_seconds'], 0)})",
             f"{s['epochs_trained']['mean']:.0f} ({span(values[p]['epochs_trained'], 0)})",
             f"{median(values[p]['trials_pruned']):.0f}",
             f"{s['best_val_image_iou']['mean']:.3f} ({span(values[p]['best_val_image_iou'], 3)})"]
            for p, s in summary.items()]
    epochs = {p: summary[p]["epochs_trained"]["mean"] for p in ("hyperband", "none")}
    separate = max(pruned["epochs_trained"]) < min(plain["epochs_trained"])
    same_best = overlap(pruned["best_val_image_iou"], plain["best_val_image_iou"])
    same_wall = overlap(pruned["wall_seconds"], plain["wall_seconds"])
    walls = {p: summary[p]["wall_seconds"]["mean"] for p in ("hyperband", "none")}
    saved = 1 - walls["hyperband"] / walls["none"]
    verdict = (f"Hyperband trained {1 - epochs['hyperband'] / epochs['none']:.0%} fewer epochs"
               f"{'' if separate else ' (the repeats overlap)'}; its best value is "
               f"{'within' if same_best else 'outside'} the repeats' spread of the unpruned search's; wall time: "
               + ("the repeats overlap, so none saved at this size, where each trial's fixed costs (start, logging, "
                  "scoring the kept checkpoint) outweigh its epochs" if same_wall else
                  f"{saved:.0%} {'less' if saved > 0 else 'more'}, the repeats' ranges apart (each trial's fixed "
                  "costs, its start, logging and scoring, are not pruned)"))
    body = "\n".join([
        provenance(meta), "", f"{result['what']}: `{' '.join(result['settings'])}`.", "",
        table(["pruner", "wall s, mean (range)", "epochs trained", "trials pruned (median)",
               "best val_image_iou, mean (range)"], rows), "",
        f"{verdict}. Note: {result['note']}."])
    summary_rows = [["Optuna search: epochs trained with Hyperband / none",
                     f"{epochs['hyperband']:.0f} / {epochs['none']:.0f}",
                     f"{meta['repeats']} repeats; best value within spread: {'yes' if same_best else 'no'}",
                     short_machine(meta), link(heading)]]
    return heading, body, summary_rows


def gpu_check(result: dict):
    heading = "The GPU check (`benchmarks/gpu_check.py`)"
    meta = result["meta"]
    low, high = result["img_s_range"]
    memory = result.get("peak_memory_gib")
    body = "\n".join([
        provenance(meta), "",
        f"On {result['device']} (JAX {result['jax']}): the seed U-Net at {result['image_size']} px, batch "
        f"{result['batch']}, {result['precision']}, XLA.", "",
        table(["img/s (median of timed epochs)", "range", "training GFLOP / image", "TFLOP/s",
               f"of {result['peak_tflop_s']:.0f} TFLOP/s", "compute-only img/s", "peak memory"],
              [[f"{result['img_s_median_after_warmup']:.0f}", f"{low:.0f}-{high:.0f}",
                f"{result['training_gflop_per_image']:.1f}", f"{result['achieved_tflop_s']:.1f}",
                f"{result['fraction_of_peak']:.1%}", f"{result.get('compute_only_img_s') or 0:.0f}",
                f"{memory:.1f} GiB" if memory else "n/a"]])])
    summary = [[f"GPU check: seed U-Net, {result['image_size']} px, {result['precision']}",
                f"{result['img_s_median_after_warmup']:.0f} img/s", f"epochs {low:.0f}-{high:.0f}",
                f"{result['device']}, {meta['date']}", link(heading)]]
    return heading, body, summary
