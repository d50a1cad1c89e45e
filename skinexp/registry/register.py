"""`python -m skinexp register run=<run id> [name=skinexp-unet] [alias=champion] [uri=...]`: a run's model as a
new version of a registered model, with an alias (MLflow aliases, not the deprecated stages) pointing at it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skinexp import tracking
from skinexp.cli.options import parse_options, usage, wants_help
from skinexp.config.schema import DEFAULT_TRACKING
from skinexp.errors import ConfigError
from skinexp.evaluation import postprocess


@dataclass
class RegisterOptions:
    run: str = ""
    name: str = "skinexp-unet"
    alias: str = "champion"
    uri: str = DEFAULT_TRACKING.uri


def version_tags(run) -> dict[str, str]:
    """What a version says about where it came from: run, config, score, threshold, data, post-processing."""
    metrics, tags = run.data.metrics, run.data.tags
    verdict = postprocess.recorded_helps(run)
    return {"run_id": run.info.run_id, "config": run.info.run_name or "",
            "hydra_overrides": tags.get("hydra_overrides", ""),
            "best_val_iou": f"{metrics['best_val_iou']:.4f}" if "best_val_iou" in metrics else "",
            "threshold": str(metrics.get("best_threshold", 0.5)),
            "dataset_fingerprint": tags.get("dataset_fingerprint", ""), "dataset": tags.get("dataset", ""),
            "postprocess": "undecided" if verdict is None else postprocess.verdict(verdict)}


def register_command(args: list[str]) -> int:
    if wants_help(args):
        print(usage("register", RegisterOptions))
        return 0
    options = parse_options("register", args, RegisterOptions)
    run_id, name, alias = options.run, options.name, options.alias
    if not run_id:
        raise ConfigError("register needs run=<run id>. Received: no run")
    if not name or "/" in name or "@" in name:
        raise ConfigError(f"name must be non-empty without / or @. Received: name={name}")
    if not alias or alias.isdigit() or "/" in alias or "@" in alias:
        raise ConfigError(f"alias must be a word, not a number, without / or @. Received: alias={alias}")
    uri = tracking.open_store_uri(options.uri, Path.cwd(), "uri")
    run = tracking.get_run(run_id)
    if run is None:
        raise ConfigError(f"no run with that id in {options.uri}. Received: run={run_id}")
    tags = version_tags(run)
    description = (f"Run {run_id} ({tags['config'] or 'unnamed'}): best_val_iou {tags['best_val_iou'] or 'n/a'}, "
                   f"threshold {tags['threshold']}, dataset {tags['dataset']} {tags['dataset_fingerprint']}, "
                   f"postprocess {tags['postprocess']}.")
    version, model_uri = tracking.register_run(run, name, alias, tags, description)
    print(f"skinexp: registered run {run_id} as {name} version {version} in {uri}\n"
          f"skinexp: {model_uri} -> version {version} (also models:/{name}/{version})")
    return 0
