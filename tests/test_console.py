"""What a newcomer sees: progress bars on a terminal only, the console kept in the run's log, Keras' verbosity
from `train.verbose=auto`, and what an interrupt says."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from conftest import REPO
from skinexp import console
from skinexp.errors import Terminated, interrupt_message


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_on_a_terminal_and_ends_with_a_newline():
    stream = Terminal()
    progress = console.Progress(3, "evaluate val", stream=stream)
    for _ in range(3):
        progress.advance()
    progress.close()
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 3 and frames[-1].startswith("evaluate val [" + "#" * 24 + "] 3/3 ")
    assert frames[0].startswith("evaluate val [" + "#" * 8 + " " * 16 + "] 1/3 ") and "img/s ETA" in frames[0]
    assert stream.getvalue().endswith("\n")


def test_progress_is_silent_in_a_log():
    stream = io.StringIO()
    progress = console.Progress(5, "predict", stream=stream)
    progress.advance(5)
    progress.close()
    assert stream.getvalue() == "" and progress.done == 5


def test_the_console_is_copied_into_the_log_file(tmp_path, capsys):
    log = tmp_path / "run" / "train.log"
    with console.copied_to(log):
        print("Epoch 1/2")
        print("skinexp: warning: something", file=sys.stderr)
    print("after")
    assert log.read_text() == "Epoch 1/2\nskinexp: warning: something\n"
    captured = capsys.readouterr()
    assert captured.out == "Epoch 1/2\nafter\n" and captured.err == "skinexp: warning: something\n"


def test_a_stream_bound_during_one_job_still_works_in_the_next_and_writes_to_its_log_only(tmp_path, capsys):
    """What a library imported inside a job does (a logging handler binding sys.stderr): the next job must not
    meet the first job's closed log, and neither log may hold the other job's lines."""
    import logging

    first, second = tmp_path / "0" / "train.log", tmp_path / "1" / "train.log"
    with console.copied_to(first):
        handler = logging.StreamHandler()  # binds the sys.stderr of this moment
        handler.stream.write("job 0\n")
    with console.copied_to(second):
        handler.stream.write("job 1\n")
    handler.stream.write("between jobs\n")
    assert first.read_text() == "job 0\n" and second.read_text() == "job 1\n"
    assert capsys.readouterr().err == "job 0\njob 1\nbetween jobs\n"


HOLD_SCRIPT = """
import os
from skinexp.console import held_stderr_descriptor
with held_stderr_descriptor():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1796410384.931765    3516 port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"E0000 00:00:1796410384.931765    3516 cuda_dnn.cc:8] plugin registered twice\\n")
    os.write(2, b"a real error from the library\\n")
    os.write(1, b"stdout is not held\\n")
"""


def test_the_held_descriptor_drops_start_up_chatter_and_passes_the_rest_on():
    result = subprocess.run([sys.executable, "-c", HOLD_SCRIPT], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "a real error from the library\n" and result.stdout == "stdout is not held\n"


@pytest.mark.parametrize("level, held", [(None, True), ("", True), ("3", True), ("1", True), ("0", False)])
def test_tensorflow_start_up_is_held_unless_the_user_asks_for_level_0(level, held, monkeypatch):
    finders = [finder for finder in sys.meta_path if not isinstance(finder, console._QuietTensorFlowImport)]
    monkeypatch.setattr(sys, "meta_path", finders)
    monkeypatch.setattr(sys, "modules", {k: v for k, v in sys.modules.items() if k != "tensorflow"})
    if level is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    console.quiet_tensorflow_start_up()
    assert any(isinstance(f, console._QuietTensorFlowImport) for f in sys.meta_path) is held
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == (level or "3")  # unset and empty become 3


@pytest.mark.parametrize("verbose, terminal, keras", [("auto", True, 1), ("auto", False, 2), ("0", True, 0),
                                                       ("2", True, 2), ("1", False, 1)])
def test_train_verbose_auto_is_a_bar_on_a_terminal_and_a_line_per_epoch_elsewhere(verbose, terminal, keras):
    from skinexp.training.train import keras_verbosity

    assert keras_verbosity(verbose, Terminal() if terminal else io.StringIO()) == keras


def test_train_verbose_takes_auto_and_keras_values_only(compose):
    from skinexp.config.checks import check_train
    from skinexp.errors import ConfigError

    assert compose("train", []).train.verbose == "auto"
    check_train(compose("train", ["train.verbose=0"]))
    with pytest.raises(ConfigError, match="Received: train.verbose=loud"):
        check_train(compose("train", ["train.verbose=loud"]))


def test_an_interrupt_says_where_training_stopped_and_how_to_continue():
    interrupt = KeyboardInterrupt()
    interrupt.run_id, interrupt.epochs_done, interrupt.epochs, interrupt.resumable = "abc", 3, 20, True
    assert interrupt_message(interrupt) == ("skinexp: interrupted after epoch 3 of 20; run abc is KILLED; continue "
                                            "with: python -m skinexp train resume=abc")
    terminated = Terminated()
    terminated.run_id, terminated.epochs_done, terminated.epochs, terminated.resumable = "abc", 0, 20, False
    assert interrupt_message(terminated) == "skinexp: terminated (SIGTERM) after epoch 0 of 20; run abc is KILLED"
    assert interrupt_message(KeyboardInterrupt()) == "skinexp: interrupted"  # before any run started
