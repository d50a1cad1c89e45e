"""Secrets and overwrites, fast: a login in a tracking URI or a password in `server database=` is refused in one
line that does not repeat it; an output that is the input is refused even with overwrite=true; files appear whole
or not at all; one tracking server per folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY, error_line, run_cli

SECRET = "hunter2-secret-pw"


@pytest.mark.parametrize("uri, hint", [
    (f"http://writer:{SECRET}@127.0.0.1:5999", "MLFLOW_TRACKING_PASSWORD"),
    (f"https://writer:{SECRET}@mlflow.example.org", "MLFLOW_TRACKING_USERNAME"),
    (f"postgresql://mlflow:{SECRET}@127.0.0.1:5432/mlflow", "PGPASSWORD"),
    (f"http://{SECRET}@127.0.0.1:5999", "MLFLOW_TRACKING_PASSWORD"),  # a token as the user
])
def test_a_login_in_tracking_uri_is_refused_without_repeating_it(uri, hint, tmp_path):
    """Subprocess: the user's exit status and stderr, before any run, store or Hydra folder exists."""
    result = run_cli("train", *TINY, f"tracking.uri={uri}", cwd=tmp_path, timeout=120)
    line = error_line(result)
    assert "tracking.uri must not carry a login" in line and hint in line, line
    assert SECRET not in result.stderr + result.stdout
    assert "***@" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", [["serve", "run=abc"], ["compare"], ["runs", "--stale"], ["register", "run=abc"],
                                     ["predict", "run=abc", "input=x"], ["evaluate", "run=abc"]])
def test_every_command_refuses_a_login_in_its_store_uri(command, main, tmp_path):
    key = "tracking.uri" if command[0] in ("predict", "evaluate") else "uri"
    result = main(*command, f"{key}=http://u:{SECRET}@127.0.0.1:5999", cwd=tmp_path)
    line = error_line(result)
    assert "must not carry a login" in line and SECRET not in result.stderr + result.stdout, line


def test_server_database_with_a_password_on_the_command_line_names_the_variable(main, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINEXP_SERVER_ADMIN_PASSWORD", "admin-password-for-tests")
    result = main("server", f"database=postgresql://mlflow:{SECRET}@127.0.0.1:5432/mlflow", cwd=tmp_path)
    line = error_line(result)
    assert "SKINEXP_SERVER_DATABASE" in line and SECRET not in line, line
    monkeypatch.setenv("SKINEXP_SERVER_DATABASE", f"mysql://u:{SECRET}@127.0.0.1/db")
    line = error_line(main("server", cwd=tmp_path))
    assert "SKINEXP_SERVER_DATABASE must be a PostgreSQL URI" in line and SECRET not in line, line


def _npy_dataset(root: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 8), ("val", 4)):
        np.save(root / f"data_{split}.npy", rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8))
        masks = np.zeros((count, 32, 32), np.uint8)
        masks[:, 8:24, 8:24] = 255
        np.save(root / f"mask_{split}.npy", masks)
    return {path.name: path.read_bytes() for path in root.iterdir()}


@pytest.mark.parametrize("output", [".", "./sub", "../data/."])
def test_convert_refuses_to_write_into_its_own_input_even_with_overwrite(output, main, tmp_path):
    root = tmp_path / "data"
    before = _npy_dataset(root)
    result = main("data", "convert", "dataset=npy", f"dataset.root={root}", "dataset.image_size=32",
                  f"output={root / output}", "overwrite=true", cwd=tmp_path)
    line = error_line(result)
    assert "output must not be the dataset.root or lie inside it" in line and "overwrite=true" in line, line
    assert {path.name: path.read_bytes() for path in root.iterdir()} == before


def test_convert_through_a_link_to_the_input_is_refused(main, tmp_path):
    root = tmp_path / "data"
    before = _npy_dataset(root)
    (tmp_path / "alias").symlink_to(root)
    result = main("data", "convert", "dataset=npy", f"dataset.root={root}", "dataset.image_size=32",
                  f"output={tmp_path / 'alias'}", "overwrite=true", cwd=tmp_path)
    assert "must not be the dataset.root" in error_line(result)
    assert {path.name: path.read_bytes() for path in root.iterdir()} == before


def test_convert_elsewhere_writes_no_partial_files(main, tmp_path):
    root = tmp_path / "data"
    _npy_dataset(root)
    out = tmp_path / "out"
    result = main("data", "convert", "dataset=npy", f"dataset.root={root}", "dataset.image_size=32",
                  f"output={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["data_train.npy", "data_val.npy", "mask_train.npy",
                                                            "mask_val.npy"]
    assert np.load(out / "mask_val.npy").max() == 255


@pytest.mark.parametrize("layout", ["same", "inside", "npy-named-predict"])
def test_predict_refuses_to_write_over_its_input_even_with_overwrite(layout, main, tmp_path):
    """Refused before the model is loaded (run=abc does not exist): the images stay as they were."""
    inputs = tmp_path / "photos"
    inputs.mkdir()
    Image.fromarray(np.full((20, 20, 3), 120, np.uint8)).save(inputs / "lesion.png")
    source, output = inputs, {"same": inputs, "inside": inputs / "masks"}.get(layout)
    if layout == "npy-named-predict":
        source = inputs / "predict.npy"
        np.save(source, np.zeros((1, 20, 20, 3), np.uint8))
        output = inputs
    before = {path.name: path.read_bytes() for path in inputs.iterdir()}
    result = main("predict", "run=abc", f"input={source}", f"output={output}", "overwrite=true",
                  f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path)
    assert "output must not be the input or lie inside it" in error_line(result)
    assert {path.name: path.read_bytes() for path in inputs.iterdir()} == before


def test_written_in_place_leaves_the_old_file_when_writing_fails(tmp_path):
    from skinexp.outputs import written_in_place

    target = tmp_path / "mask.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with written_in_place(target) as partial:
            partial.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]
    with written_in_place(target) as partial:
        partial.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]


def test_a_second_server_in_the_same_folder_is_refused_while_the_first_holds_its_lock(tmp_path):
    """A real flock held by another process (as a running `skinexp server` holds it)."""
    from skinexp.errors import ConfigError
    from skinexp.team.server import lock_folder

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from skinexp.team.server import lock_folder; "
        f"held = lock_folder(Path({str(tmp_path)!r})); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"another skinexp server runs from this folder.*pid {holder.pid}"):
            lock_folder(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    held = lock_folder(tmp_path)  # free again once that process is gone
    assert (tmp_path / "server.lock").stat().st_mode & 0o777 == 0o600
    held.close()


def test_private_files_are_never_readable_by_others(tmp_path):
    from skinexp.team.postgres import write_private

    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    previous = os.umask(0)  # the most permissive umask: the mode must come from the code, not from the umask
    try:
        write_private(path, "new")
        write_private(tmp_path / "fresh", "x")
    finally:
        os.umask(previous)
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "fresh").stat().st_mode & 0o777 == 0o600
