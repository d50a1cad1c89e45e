"""The process-wide state a training sets, once and here: the Keras backend, seeds, determinism, devices, the
precision policy and multi-device distribution.

`select_backend` runs before anything imports Keras (Keras reads `KERAS_BACKEND` when it is first imported);
everything else runs after, from `configure_runtime`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import warnings
from pathlib import Path

from skinexp.config.schema import Backend, Precision, Strategy
from skinexp.errors import ConfigError

# /proc/cpuinfo's names for the instructions oneDNN runs bf16 convolutions and matmuls on.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
BF16_GPU_CAPABILITY = (8, 0)  # NVIDIA Ampere and later have bf16 tensor cores
INSTALL_JAX = "pip install -e '.[jax]' (or make install-jax)"


def select_backend(backend: Backend, deterministic: bool = False) -> str:
    """Make `backend` (`train.backend`, or evaluate's and predict's `backend`) the backend Keras loads with;
    returns its name. `deterministic` asks XLA's GPU kernels for reproducible results (JAX).

    ConfigError when JAX is asked for but not installed, or when Keras is already loaded in this process on
    another backend (the jobs of a sweep that runs in one process share it).
    """
    name = str(backend)
    if name == Backend.jax and not importable("jax"):
        raise ConfigError(f"backend jax needs JAX, which is not installed: {INSTALL_JAX}. "
                          f"Received: backend=jax")
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        loaded = keras.backend.backend()
        if loaded != name:
            raise ConfigError(f"backend {name} asked for, but Keras already runs on {loaded} in this process (the "
                              f"jobs of a sweep in one process share a backend: sweep one backend at a time). "
                              f"Received: backend={name}")
        return name
    os.environ["KERAS_BACKEND"] = name
    if name == Backend.jax:
        logging.getLogger("jax").setLevel(logging.WARNING)  # not its INFO line about the TPU it did not find
    if name == Backend.jax and deterministic:
        # XLA's GPU kernels pick the fastest algorithm unless told to be reproducible (read when JAX starts).
        os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                                         "--xla_gpu_deterministic_ops=true"]))
    return name


def importable(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def backend_version(backend: str) -> str:
    """The installed version of the backend's package (tensorflow-cpu counts as tensorflow)."""
    from importlib import metadata

    for package in ("jax",) if backend == Backend.jax else ("tensorflow", "tensorflow-cpu"):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def configure_runtime(train_cfg, job_number: int = 0) -> str:
    """Seeds, determinism, GPUs, precision policy and distribution; returns the precision policy in force."""
    import keras

    keras.backend.clear_session()  # sweeps run jobs in one process: start each from a clean state
    backend = keras.backend.backend()
    if backend == Backend.tensorflow:
        _configure_tensorflow(train_cfg, job_number)
    else:
        _configure_jax(train_cfg, job_number)
    reseed(train_cfg)
    precision, _ = resolve_precision(train_cfg.precision, backend)
    keras.mixed_precision.set_global_policy(precision)
    return precision


def reseed(train_cfg) -> None:
    """Python's, NumPy's, TensorFlow's and Keras' random state as `train.seed` sets them: at configuration, and
    again after work that drew from them before the run's own model and data (the minutes budget's probe)."""
    import keras

    keras.utils.set_random_seed(train_cfg.seed)


def _configure_tensorflow(train_cfg, job_number: int) -> None:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and train_cfg.pin_gpu:
        # Parallel sweep jobs each take one GPU: job k runs on GPU k mod n.
        gpus = [gpus[job_number % len(gpus)]]
        tf.config.set_visible_devices(gpus, "GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if train_cfg.deterministic:
        tf.config.experimental.enable_op_determinism()


def _configure_jax(train_cfg, job_number: int) -> None:
    import jax
    import keras
    from keras.src.utils import module_utils

    # keras.utils.set_random_seed also seeds TensorFlow whenever it is installed, importing it: a JAX run must not.
    module_utils.tensorflow._available = False
    # Keras' IoU metrics ask for int64 per-batch counts, which JAX gives as int32 (enough below 2**31 pixels a batch).
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64", category=UserWarning)

    gpus = [device for device in jax.devices() if device.platform == "gpu"]
    if gpus and train_cfg.pin_gpu:
        jax.config.update("jax_default_device", gpus[job_number % len(gpus)])
    # JAX on the CPU is deterministic as it is; on a GPU select_backend asked XLA for deterministic kernels.
    distribution = None
    if train_cfg.strategy == Strategy.mirrored:
        # MirroredStrategy's counterpart: the batch split over every local device, the weights replicated.
        distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    keras.distribution.set_distribution(distribution)


def jit_compile(value: str):
    """`train.jit_compile` as Keras' `compile` takes it: "auto" stands (Keras decides), true and false are bools."""
    value = str(value).lower()
    return value if value == "auto" else value == "true"


def strategy_scope(strategy: Strategy):
    """The scope models are built in: a TensorFlow distribution strategy, or (JAX) none: its distribution is global."""
    import keras

    if keras.backend.backend() != Backend.tensorflow:
        return contextlib.nullcontext()
    import tensorflow as tf

    strategies = {Strategy.default: tf.distribute.get_strategy, Strategy.mirrored: tf.distribute.MirroredStrategy}
    return strategies[strategy]().scope()


def resolve_precision(precision: Precision, backend: str) -> tuple[str, str]:
    """(the Keras dtype policy, why): `auto` is `mixed_bfloat16` where the device trained on runs bf16 natively
    (NVIDIA compute capability 8.0 and above; x86 with AVX512_BF16 or AMX), else `float32`; other values stand."""
    if precision != Precision.auto:
        return str(precision), f"train.precision={precision}"
    native, device = bf16_support(backend)
    return ("mixed_bfloat16" if native else "float32"), device


def bf16_support(backend: str) -> tuple[bool, str]:
    """Whether training on this machine runs bf16 natively, and the device that decided it, in words."""
    capabilities = gpu_capabilities(backend)
    if capabilities:
        lowest = min(capabilities)  # mirrored training runs on all of them
        native = lowest >= BF16_GPU_CAPABILITY
        return native, f"GPU of compute capability {lowest[0]}.{lowest[1]}"
    found = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
    return bool(found), f"CPU with {' and '.join(found)}" if found else "CPU without AVX512_BF16 or AMX"


def gpu_capabilities(backend: str) -> list[tuple[int, int]]:
    """The compute capability of each GPU the backend sees (empty on a CPU-only machine)."""
    if backend == Backend.tensorflow:
        import tensorflow as tf

        details = [tf.config.experimental.get_device_details(gpu) for gpu in tf.config.list_physical_devices("GPU")]
        return [tuple(detail["compute_capability"]) for detail in details if "compute_capability" in detail]
    import jax

    capabilities = []
    for device in jax.devices():
        if device.platform == "gpu" and getattr(device, "compute_capability", None):
            major, minor = str(device.compute_capability).split(".")[:2]
            capabilities.append((int(major), int(minor)))
    return capabilities


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags: what the kernel lists in /proc/cpuinfo, and what NumPy read with CPUID itself
    (a virtual machine's /proc/cpuinfo can differ from what the processor answers)."""
    flags: set[str] = set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
                break
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    names = {"AVX512BF16": "avx512_bf16", "AMX_BF16": "amx_bf16", "AVX512F": "avx512f"}
    flags.update(flag for feature, flag in names.items() if features.get(feature))
    return flags
