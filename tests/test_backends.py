"""Keras backends and precision: `train.backend` (TensorFlow or JAX) and `train.precision=auto`.

The in-process tests run on TensorFlow (this pytest process imported Keras on it). The JAX tests (marker `jax`,
run by `make test-slow`, skipped where JAX is not installed) train, evaluate, predict, resume and rerun in
subprocesses, since a process holds one backend, and read the runs back from the store.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY, error_line
from skinexp.config.schema import Precision
from skinexp.training import runtime


def jax_test(function):
    """A JAX test: marked `jax` (the slow suite runs them); skipped where JAX is not installed (failed under CI)."""
    return pytest.mark.jax(pytest.mark.usefixtures("jax_installed")(function))


# Runs `python -m skinexp ARGS` and reports whether TensorFlow was ever imported, on its last line.
WATCHED = ("import json, sys\nfrom skinexp.__main__ import main\ncode = main(sys.argv[1:])\n"
           "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules}))\nsys.exit(code)\n")


def _run(*args: str, cwd: Path, backend: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, "-c", WATCHED, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _ok(result) -> dict:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _runs(uri: str, experiment: str = "skinexp"):
    client = MlflowClient(uri)
    return client, sorted(client.search_runs([client.get_experiment_by_name(experiment).experiment_id]),
                          key=lambda run: run.info.start_time)


def _history(client, run_id: str, metric: str = "val_loss") -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)]


# --- precision=auto ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, gpus, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, [], "mixed_bfloat16"),
    ({"avx2", "amx_bf16", "amx_tile"}, [], "mixed_bfloat16"),
    ({"avx2", "avx512f"}, [], "float32"),
    ({"avx512_bf16"}, [(9, 0)], "mixed_bfloat16"),  # the GPU decides where there is one
    ({"avx512_bf16"}, [(7, 5)], "float32"),
    (set(), [(8, 0), (7, 0)], "float32"),  # mirrored training runs on the slowest too
])
def test_auto_precision_is_bf16_exactly_where_the_hardware_runs_it(monkeypatch, flags, gpus, expected):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    monkeypatch.setattr(runtime, "gpu_capabilities", lambda backend: gpus)
    assert runtime.resolve_precision(Precision.auto, "tensorflow")[0] == expected
    assert runtime.resolve_precision(Precision.float32, "tensorflow")[0] == "float32"  # explicit values stand
    assert runtime.resolve_precision(Precision.mixed_bfloat16, "tensorflow")[0] == "mixed_bfloat16"


def test_cpu_flags_read_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\nbugs\t\t: none\n")
    assert {"avx2", "avx512f", "avx512_bf16"} <= runtime.cpu_flags(cpuinfo)
    assert "bugs" not in runtime.cpu_flags(cpuinfo)


def test_a_run_logs_the_precision_it_ran_with_and_its_backend(trained):
    run = trained["run"]
    expected, decided_by = runtime.resolve_precision(Precision.auto, "tensorflow")
    assert run.data.params["train.precision"] == expected and run.data.tags["precision"] == expected
    assert run.data.tags["keras_backend"] == "tensorflow" and run.data.params["train.backend"] == "tensorflow"
    assert f"skinexp: Keras on tensorflow, precision {expected} (train.precision=auto: {decided_by})" in \
        trained["result"].stdout.splitlines()


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("true", True), ("True", True), ("false", False)])
def test_jit_compile_is_keras_auto_or_a_bool(value, expected):
    assert runtime.jit_compile(value) == expected


# --- bad input: one line, exit 2, no run ------------------------------------------------------------------------

def test_an_unknown_backend_is_refused_with_the_allowed_values(main, tmp_path, store):
    line = error_line(main("train", *TINY, "train.backend=torch", *store["overrides"], cwd=tmp_path))
    assert "train.backend" in line and "tensorflow" in line and "jax" in line and "torch" in line


def test_a_clash_with_keras_backend_is_refused(main, tmp_path, store, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    line = error_line(main("train", *TINY, "train.backend=tensorflow", *store["overrides"], cwd=tmp_path))
    assert line.endswith("Received: train.backend=tensorflow with KERAS_BACKEND=jax")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert error_line(main("train", *TINY, *store["overrides"], cwd=tmp_path)).endswith(
        "Received: KERAS_BACKEND=torch")
    assert not (tmp_path / "mlflow.db").exists() or not MlflowClient(store["uri"]).search_runs(["0"])


def test_jax_missing_says_how_to_install_it_and_starts_no_run(main, tmp_path, store, monkeypatch):
    monkeypatch.setattr(runtime, "importable", lambda package: package != "jax")
    line = error_line(main("train", *TINY, "train.backend=jax", *store["overrides"], cwd=tmp_path))
    assert "pip install -e '.[jax]'" in line and line.endswith("Received: backend=jax")
    client = MlflowClient(store["uri"])
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.usefixtures("jax_installed")
def test_a_backend_other_than_the_one_keras_runs_on_in_this_process_is_refused(main, tmp_path, store):
    line = error_line(main("train", *TINY, "train.backend=jax", *store["overrides"], cwd=tmp_path))
    assert "already runs on tensorflow in this process" in line


# --- JAX, in its own processes ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """A tiny training on JAX with the model logged, in a process that must never import TensorFlow."""
    workdir = tmp_path_factory.mktemp("jax")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = _run("train", *TINY, "dataset.test_split=0.25", "dataset.num_samples=20", "train.backend=jax",
                  f"tracking.uri={uri}", cwd=workdir)
    client, (run,) = _runs(uri)
    return {"result": result, "watched": _ok(result), "client": client, "run": run, "uri": uri, "workdir": workdir}


@jax_test
@pytest.mark.xdist_group("jax_run")  # the module's one JAX training, in one worker
def test_a_jax_run_never_imports_tensorflow_and_records_its_backend(jax_run):
    run = jax_run["run"]
    assert jax_run["watched"] == {"tensorflow": False}
    assert run.info.status == "FINISHED" and run.data.tags["keras_backend"] == "jax"
    assert run.data.tags["keras_backend_version"] == run.data.tags["version.jax"]
    assert run.data.params["train.backend"] == "jax"
    assert len(_history(jax_run["client"], run.info.run_id, "val_iou")) == 2
    artifacts = {a.path for a in jax_run["client"].list_artifacts(run.info.run_id)}
    assert {"checkpoints", "images", "curves.png", "val_per_image.csv"} <= artifacts  # images: the sample masks
    assert 0 < run.data.metrics["best_threshold"] < 1


@jax_test
@pytest.mark.xdist_group("jax_run")  # the module's one JAX training, in one worker
def test_a_jax_run_is_evaluated_and_predicted_on_tensorflow(jax_run, main):
    run, workdir = jax_run["run"], jax_run["workdir"]
    evaluated = main("evaluate", f"run={run.info.run_id}", f"tracking.uri={jax_run['uri']}", "split=test",
                     f"output={workdir / 'eval-tf'}", cwd=workdir)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads((workdir / "eval-tf" / "summary.json").read_text())
    on_jax = _run("evaluate", f"run={run.info.run_id}", f"tracking.uri={jax_run['uri']}", "split=test",
                  f"output={workdir / 'eval-jax'}", cwd=workdir, backend="jax")
    assert _ok(on_jax) == {"tensorflow": False}
    assert json.loads((workdir / "eval-jax" / "summary.json").read_text())["mean_iou"] == pytest.approx(
        summary["mean_iou"], abs=1e-4)  # the same weights give the same masks on either backend


@jax_test
@pytest.mark.timeout(600)  # three JAX processes: 210 s on 2 busy cores
def test_a_tensorflow_run_is_evaluated_predicted_and_resumed_on_jax(trained, tmp_path, main, store):
    import numpy as np

    run, uri = trained["run"], trained["client"].tracking_uri
    images = tmp_path / "images.npy"
    np.save(images, np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    predicted = _run("predict", f"run={run.info.run_id}", f"tracking.uri={uri}", f"input={images}",
                     f"output={tmp_path / 'masks'}", "backend=jax", cwd=tmp_path)
    assert _ok(predicted) == {"tensorflow": False} and len(list((tmp_path / "masks").glob("*.png"))) == 3

    first = main("train", *TINY, "train.epochs=1", *store["overrides"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    client, (tf_run,) = _runs(store["uri"])
    resumed = _run("train", f"resume={tf_run.info.run_id}", "train.epochs=2", "train.backend=jax",
                   *store["overrides"], cwd=tmp_path)
    assert _ok(resumed) == {"tensorflow": False}
    client, (continued,) = _runs(store["uri"])  # the same run, continued on the other backend
    assert continued.info.status == "FINISHED" and continued.data.tags["resumed_from_epoch"] == "1"
    assert len(_history(client, tf_run.info.run_id, "val_loss")) == 2


@jax_test
@pytest.mark.xdist_group("jax_run")  # the module's one JAX training, in one worker
def test_a_jax_run_resumes_on_tensorflow(jax_run, main):
    run, workdir = jax_run["run"], jax_run["workdir"]
    resumed = main("train", f"resume={run.info.run_id}", "train.epochs=3", "train.backend=tensorflow",
                   f"tracking.uri={jax_run['uri']}", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client = jax_run["client"]
    continued = client.get_run(run.info.run_id)  # the same run, continued on the other backend
    assert continued.info.status == "FINISHED" and continued.data.tags["resumed_from_epoch"] == "2"
    assert len(_history(client, run.info.run_id, "val_iou")) == 3


@jax_test
@pytest.mark.timeout(600)  # two JAX trainings: 170 s on 2 busy cores
def test_jax_reruns_deterministically(tmp_path, store):
    args = [*TINY, "train.deterministic=true", "augment=strong", "model.dropout=0.2", "tracking.log_model=false",
            "train.backend=jax", *store["overrides"]]
    _ok(_run("train", *args, cwd=tmp_path))
    client, (first,) = _runs(store["uri"])
    _ok(_run("rerun", first.info.run_id, *store["overrides"], cwd=tmp_path, backend="jax"))
    client, (_, again) = _runs(store["uri"])
    assert again.data.tags["rerun_of"] == first.info.run_id
    assert _history(client, again.info.run_id) == pytest.approx(_history(client, first.info.run_id), abs=1e-6)
    assert _history(client, again.info.run_id, "val_iou") == pytest.approx(
        _history(client, first.info.run_id, "val_iou"), abs=1e-6)


@jax_test
def test_jax_trains_with_bf16_xla_data_parallel_augmentation_and_the_lovasz_loss(tmp_path, store):
    _ok(_run("train", *TINY, "train.backend=jax", "train.precision=mixed_bfloat16", "train.jit_compile=true",
             "train.strategy=mirrored", "augment=strong", "loss=bce_lovasz", "model.deep_supervision=true",
             "tracking.log_model=false", *store["overrides"], cwd=tmp_path))
    client, (run,) = _runs(store["uri"])
    assert run.data.params["train.precision"] == "mixed_bfloat16" and run.data.params["train.strategy"] == "mirrored"
    assert run.data.params["loss.name"] == "bce_lovasz"
    assert all(value == value for value in _history(client, run.info.run_id))  # no NaN


@pytest.mark.parametrize("launcher", ["basic", "joblib", "local_processes"])
@jax_test
def test_a_jax_sweep_lands_under_one_parent(tmp_path, store, launcher):
    _ok(_run("train", "-m", *TINY, "train.epochs=1", "tracking.log_model=false", "train.seed=1,2",
             f"hydra/launcher={launcher}", *store["overrides"], cwd=tmp_path, backend="jax"))
    client, runs = _runs(store["uri"])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {run.data.tags["keras_backend"] for run in children} == {"jax"}
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parents[0].info.run_id}


@pytest.mark.slow
@pytest.mark.timeout(900)  # a venv of the GPU image's wheels, then a training: 270 s on 2 busy cores
def test_the_gpu_check_runs_in_a_copy_of_the_gpu_image_with_only_its_wheels(tmp_path):
    """benchmarks/gpu_check_sim.sh: a venv with only the GPU image's packages (no TensorFlow) plus the check's
    wheels, installed as the GPU machine installs them, then the check with a tiny step count. Needs PyPI."""
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_check_sim.sh"), "--size", "32", "--images", "20",
                             "--batch", "4", "--epochs", "2", "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=900, env={**os.environ, "SIM": str(tmp_path / "sim"), "PYTHON": sys.executable})
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    wheels = len(list((repo / ".gpu-wheels").glob("*.whl")))
    assert f"gpu_check: installing {wheels} wheels into {tmp_path / 'sim' / 'site'}" in result.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["platform"] == "cpu" and report["precision"] == "mixed_bfloat16"
    assert len(report["img_s_per_epoch"]) == 2 and report["img_s_median_after_warmup"] > 0
    assert report["achieved_tflop_s"] == pytest.approx(
        report["img_s_median_after_warmup"] * report["training_gflop_per_image"] / 1000)
    assert "TFLOP/s" in result.stdout and "of 790 TFLOP/s" in result.stdout

@jax_test
def test_a_capped_epoch_on_jax_trains_its_kept_batches_only(tmp_path, store):
    """train.max_steps_per_epoch=2 on JAX (the PyDataset's capped length): 2 steps of 4 images an epoch. The learning
    rate logged at each epoch's end is the cosine schedule's at steps 2 and 4 of its 4, and images_seen is 8 and 16
    (uncapped, the epoch is the whole split: 4 batches of the 13 training images, 8 steps, 13 and 26 images)."""
    from skinexp.config.compose import compose
    from skinexp.model.optim import learning_rate

    args = [*TINY, "optim.schedule=cosine", "optim.lr=1e-3", "optim.warmup_epochs=0", "train.max_steps_per_epoch=2",
            "tracking.log_model=false", "train.backend=jax"]
    _ok(_run("train", *args, *store["overrides"], cwd=tmp_path))
    client, (run,) = _runs(store["uri"])
    assert run.data.params["train.steps"] == "4"
    schedule = learning_rate(compose("train", args).optim, 2, 4)
    assert _history(client, run.info.run_id, "learning_rate") == pytest.approx(
        [float(schedule(2)), float(schedule(4))], rel=1e-5)
    assert _history(client, run.info.run_id, "images_seen") == [8.0, 16.0]
