#!/usr/bin/env bash
# The GPU check in a copy of the GPU machine's Python, here on the CPU, before a GPU lease (whose minutes are few)
# is spent on it: a venv holding only what the GPU image has of the check's needs (benchmarks/gpu_image_packages.txt;
# no TensorFlow), then benchmarks/gpu_check.sh with the wheels of .gpu-wheels/ (its cp312 builds swapped for this
# Python's builds of the same versions) and a tiny step count. A need that the image lacks and no wheel brings
# fails here, in one line or at its import, instead of there.
#   benchmarks/gpu_check_sim.sh [gpu_check.py ARGS]    default ARGS: --size 32 --images 20 --batch 4 --epochs 2
# Needs the network (PyPI) and about 2 minutes; SIM (default /tmp/skinexp-gpu-sim) is replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SIM=${SIM:-/tmp/skinexp-gpu-sim}
[ -d .gpu-wheels ] || benchmarks/gpu_check.sh download

rm -rf "$SIM" && "$PYTHON" -m venv "$SIM" && mkdir "$SIM/wheels"
pip=("$SIM/bin/python" -m pip --quiet --disable-pip-version-check)
cp .gpu-wheels/*.whl "$SIM/wheels/"
for wheel in "$SIM"/wheels/*-cp312-*.whl; do
  [ -e "$wheel" ] || continue
  name=$(basename "$wheel" | cut -d- -f1) version=$(basename "$wheel" | cut -d- -f2)
  rm "$wheel"
  "${pip[@]}" download --no-deps --only-binary=:all: -d "$SIM/wheels" "$name==$version"
done

# What the wheels require (markers read as on the GPU machine's Python 3.12) that no wheel brings, plus skinexp's
# own needs on JAX: all of it must be in the image.
needs=$("$SIM/bin/python" - "$SIM/wheels" benchmarks/gpu_image_packages.txt <<'EOF'
import re
import sys
import zipfile
from pathlib import Path

from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

wheels, image_file = Path(sys.argv[1]), Path(sys.argv[2])
image = {canonicalize_name(line) for line in image_file.read_text().split("\n") if line and not line.startswith("#")}
gpu_python = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
provided, required = set(), {}
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    provided.add(canonicalize_name(re.search(r"^Name: (.+)$", text, re.M).group(1).strip()))
    for line in re.findall(r"^Requires-Dist: (.+)$", text, re.M):
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(gpu_python):
            required.setdefault(canonicalize_name(requirement.name), wheel.name)
for own in ("numpy", "scipy", "matplotlib", "pillow", "jax"):  # skinexp's needs besides Keras, Hydra, MLflow
    required.setdefault(own, "skinexp")
missing = sorted(f"{name} (for {by})" for name, by in required.items() if name not in provided | image)
if missing:
    print(f"gpu_check_sim: the GPU image lacks, and no wheel brings: {', '.join(missing)}; add it to PACKAGES in "
          "benchmarks/gpu_check.sh", file=sys.stderr)
    sys.exit(2)
pins = {"jax": "jax[cpu]>=0.10,<0.12"}  # the CPU build of the jax extra's range stands in for the image's CUDA one
print(" ".join(sorted(pins.get(name, name) for name in required if name not in provided)))
EOF
)
echo "gpu_check_sim: the image's packages it needs: $needs"
# shellcheck disable=SC2086  # one word a package
set -f; "${pip[@]}" install $needs; set +f
if "$SIM/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "gpu_check_sim: TensorFlow got into the simulated image" >&2
  exit 1
fi
[ $# -gt 0 ] || set -- --size 32 --images 20 --batch 4 --epochs 2
WHEELS="$SIM/wheels" PYTHON="$SIM/bin/python" TARGET="$SIM/site" exec benchmarks/gpu_check.sh "$@"
