"""`python -m skinexp data check|convert|synth`, and bad data on the command line: one line, exit status 2.

Commands run in this process (`run_main`); only the check that `data check` never imports TensorFlow needs
a fresh interpreter."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from datafiles import dataset_cfg, write_folder, write_npy

from conftest import REPO, error_line, run_main
from skinexp.data import load_splits


def test_check_reports_pairs_sizes_foreground_and_never_imports_tensorflow(tmp_path):
    write_folder(tmp_path / "data" / "train", 5, size=24)
    write_folder(tmp_path / "data" / "val", 2, size=32, stem="v{}")
    script = ("import sys; from skinexp.__main__ import main; code = main(['data', 'check', 'dataset=folder', "
              f"'dataset.root={tmp_path / 'data'}', 'dataset.image_size=16']); "
              "print('TF' if 'tensorflow' in sys.modules else 'no TF'); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "pairs: train 5, val 2" in out
    assert "min 24x24, max 32x32, most common 24x24 (5 of 7)" in out
    assert "foreground fraction: mean" in out and "empty masks: 0" in out
    assert "problems: none" in out and out.strip().endswith("no TF")


def test_check_lists_every_problem_then_fails_naming_the_first(tmp_path):
    write_folder(tmp_path, 4)
    (tmp_path / "masks" / "img1.png").unlink()
    (tmp_path / "images" / "img3.png").write_bytes(b"junk")
    result = run_main("data", "check", "dataset=folder", f"dataset.root={tmp_path}", cwd=tmp_path)
    assert "pairs: train 2" in result.stdout
    assert f"problem: {tmp_path / 'images' / 'img1.png'} has no mask" in result.stdout
    assert f"problem: {tmp_path / 'images' / 'img3.png'} could not be decoded" in result.stdout
    assert "2 problem(s)" in error_line(result)


def test_convert_writes_the_notebook_files_that_load_back_the_same(tmp_path):
    write_folder(tmp_path / "data", 10, size=24)
    args = ["dataset=folder", f"dataset.root={tmp_path / 'data'}", "dataset.image_size=16", "dataset.test_split=0.2"]
    result = run_main("data", "convert", *args, f"output={tmp_path / 'npy'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = np.load(tmp_path / "npy" / "data_train.npy")
    masks = np.load(tmp_path / "npy" / "mask_train.npy")
    assert data.dtype == np.uint8 and data.shape == (6, 16, 16, 3) and masks.shape == (6, 16, 16)
    assert set(np.unique(masks)) <= {0, 255}
    original = load_splits(dataset_cfg(name="folder", root=tmp_path / "data", image_size=16, test_split=0.2))
    again = load_splits(dataset_cfg(name="npy", root=tmp_path / "npy", image_size=16))
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(original, name).images, getattr(again, name).images), name
        assert np.array_equal(getattr(original, name).masks, getattr(again, name).masks), name

    refused = run_main("data", "convert", *args, f"output={tmp_path / 'npy'}", cwd=tmp_path)
    assert "data_train.npy already exists; pass overwrite=true" in error_line(refused)
    smaller = run_main("data", "convert", *args[:-1], f"output={tmp_path / 'npy'}", "overwrite=true", cwd=tmp_path)
    assert smaller.returncode == 0, smaller.stderr
    assert not (tmp_path / "npy" / "data_test.npy").exists()  # no test split this time: the old one is gone


@pytest.mark.parametrize("fmt", ["folder", "npy"])
def test_synth_writes_a_set_the_sources_read(tmp_path, fmt):
    out = tmp_path / "synth"
    args = ["data", "synth", f"output={out}", f"format={fmt}", "dataset.num_samples=6", "dataset.image_size=16"]
    assert run_main(*args, cwd=tmp_path).returncode == 0
    splits = load_splits(dataset_cfg(name=fmt, root=out, image_size=16))
    assert len(splits.train) + len(splits.val) == 6
    if fmt == "folder":
        assert sorted(p.name for p in (out / "masks").iterdir())[0] == "synthetic_00000.png"
    first_file = out / "images" / "synthetic_00000.png" if fmt == "folder" else out / "data_train.npy"
    assert f"{first_file} already exists; pass overwrite=true" in error_line(run_main(*args, cwd=tmp_path))
    assert run_main(*args[:-2], "dataset.num_samples=4", "dataset.image_size=16", "overwrite=true",
                    cwd=tmp_path).returncode == 0
    assert len(load_splits(dataset_cfg(name=fmt, root=out, image_size=16)).train) == 3  # the old six are gone


def _npy_count_mismatch(root):
    write_npy(root, count=4)
    np.save(root / "mask_train.npy", np.zeros((3, 16, 16), np.uint8))
    return "mask_train.npy", "4 images, 3 masks"


def _npy_corrupt(root):
    write_npy(root)
    (root / "data_train.npy").write_bytes(b"\x93NUMPY garbage")
    return str(root / "data_train.npy"), "not a readable .npy"


def _folder_missing_mask(root):
    write_folder(root, 3)
    (root / "masks" / "img2.png").unlink()
    return str(root / "images" / "img2.png"), "has no mask"


def _folder_truncated_image(root):
    write_folder(root, 3, size=64, image_ext=".jpg")
    target = root / "images" / "img0.jpg"
    target.write_bytes(target.read_bytes()[:300])
    return str(target), "could not be decoded"


@pytest.mark.parametrize("make, source", [(_npy_count_mismatch, "npy"), (_npy_corrupt, "npy"),
                                          (_folder_missing_mask, "folder"), (_folder_truncated_image, "folder")])
def test_bad_data_on_the_command_line_is_one_line_naming_the_file(tmp_path, make, source):
    root = tmp_path / "data"
    root.mkdir()
    fragments = make(root)
    line = error_line(run_main("data", "convert", f"dataset={source}", f"dataset.root={root}",
                               "dataset.image_size=16", f"output={tmp_path / 'out'}", cwd=tmp_path))
    for fragment in fragments:
        assert fragment in line, line


def test_train_on_bad_data_fails_with_one_line_before_any_run(tmp_path, store):
    root = tmp_path / "data"
    _folder_missing_mask(root)
    result = run_main("train", "dataset=folder", f"dataset.root={root}", "dataset.image_size=32", "model.depth=2",
                     *store["overrides"], cwd=tmp_path)
    assert str(root / "images" / "img2.png") in error_line(result)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("args, fragments", [
    (["data"], ["data needs a subcommand"]),
    (["data", "convert", "dataset=folder"], ["dataset.root is required"]),
    (["data", "synth"], ["needs output=DIR"]),
    (["data", "synth", "output=x", "format=zip"], ["format must be one of folder, npy. Received: format=zip"]),
    (["data", "check", "dataset=parquet"], ["parquet"]),
])
def test_usage_errors_are_one_line(tmp_path, args, fragments):
    line = error_line(run_main(*args, cwd=tmp_path))
    assert all(fragment in line for fragment in fragments), line


def test_help_lists_the_subcommands():
    result = run_main("data", "--help", cwd=REPO)
    assert result.returncode == 0 and all(word in result.stdout for word in ("check", "convert", "synth"))
