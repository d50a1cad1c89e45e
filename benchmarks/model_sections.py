"""The rendered section of the U-Net ablation (`benchmarks/ablation.py`): from docs/ablation.json only."""
from __future__ import annotations

from sections import link, provenance, short_machine, table


def _interval(values: list) -> str:
    low, high = values
    return "" if low is None else f"[{low:.3f}, {high:.3f}]"


def _rate(images_per_sec: dict) -> str:
    return f"{images_per_sec['median']:.1f} ± {images_per_sec['sd']:.1f}"


def _seconds(row: dict) -> float:
    """Proportional to the training seconds the budget takes: its steps over img/s (every config has one batch size)."""
    return row["train_steps"] / row["images_per_sec"]["median"]


def ablation(result: dict):
    heading = "U-Net options at equal compute (`benchmarks/ablation.py`)"
    meta, configs, baseline = result["meta"], result["configs"], result["baseline"]
    speed = meta["speed"]
    plain = configs[baseline]
    rows = []
    for name, row in configs.items():
        diff = "" if row["diff"] is None else f"{row['diff']:+.3f} {_interval(row['diff_ci95'])}"
        p_value = "" if row["p_value"] is None else f"{row['p_value']:.3g}"
        rows.append([name, " ".join(f"`{o}`" for o in row["overrides"]) or "(the plain U-Net)",
                     f"{row['parameters']:,}", f"{row['training_gflop_per_image']:.3f}",
                     f"{row['train_steps']:,}", _rate(row["images_per_sec"]),
                     f"{row['mean']:.3f} {_interval(row['ci95'])}", diff, p_value, row["verdict"]])
    verdicts = [row["verdict"] for name, row in configs.items() if name != baseline]
    light = configs.get("light")
    light_text = ""
    if light is not None:
        light_rate, plain_rate = light["images_per_sec"]["median"], plain["images_per_sec"]["median"]
        light_text = (
            f"The light config (`model=unet_light`) has {light['parameters'] / plain['parameters']:.1%} of the plain "
            f"U-Net's parameters and {light['training_gflop_per_image'] / plain['training_gflop_per_image']:.1%} of "
            f"its training FLOPs per image; at the same GFLOP budget it took {light['train_steps']:,} steps against "
            f"{plain['train_steps']:,}; it trains at {light_rate:.0f} img/s against {plain_rate:.0f} on this CPU, so "
            f"the budget takes {_seconds(light) / _seconds(plain):.2f} times the plain U-Net's training time. "
            f"Its mean per-image IoU differs from the plain "
            f"U-Net's by {light['diff']:+.3f} {_interval(light['diff_ci95'])}: {light['verdict']}.")
    body = "\n".join([
        provenance(meta), "",
        f"{result['what']} Every run: {result['gflop_budget']:,.0f} training GFLOP, `{' '.join(result['settings'])}`; "
        f"mean per-image IoU at threshold 0.5 over the {plain['images']} out-of-fold images, each option against "
        f"`{baseline}` (`compare baseline=`): the paired difference with its bootstrap 95 % interval, the "
        f"Holm-adjusted Wilcoxon p-value and the verdict. img/s is the training rate on this CPU (median of "
        f"{speed['repeats']} interleaved rounds of the runs' training step, measured {speed['date']} "
        f"{speed['time_utc']} UTC at 1-minute load {speed['load_1min_at_start']} to {speed['load_1min_at_end']}): "
        "median ± sd.", "",
        table(["config", "overrides", "parameters", "training GFLOP / image", "steps", "img/s",
               "mean IoU [95 % CI]", "diff [95 % CI]", "p (Holm)", "verdict"], rows), "",
        light_text])
    summary = [[f"U-Net options vs plain at {result['gflop_budget']:,.0f} GFLOP, 3-fold CV",
                ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts)),
                f"{len(configs)} configs x 3 folds", short_machine(meta), link(heading)]]
    return heading, body, summary
