#!/bin/bash
# The script to run on a lent GPU machine, from the project's root, with the wheels of
# ../shared/gpu/wheels.txt in .whl/ (benchmarks/fetch_gpu_wheels.sh; carry ".whl"):
#   run(command="bash benchmarks/gpu_device.sh", carry=[".whl"], timeout_s=590)
# then, at once while the machine is warm and if the budget allows (about 200 s):
#   run(command="bash benchmarks/gpu_device.sh more", carry=[".whl"], timeout_s=240)
# The first runs `pytest -m gpu` and `bench gpu`; "more" profiles the gated-125m step and
# times looped against scanned layers at GPU sizes. Each part has its own time limit;
# everything is written under $OUT (default: ./gpu-out).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
ls .whl/*.whl > /dev/null 2>&1 || { echo "no wheels in .whl/: run benchmarks/fetch_gpu_wheels.sh first" >&2; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import jax, jaxlib; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, jax.devices())"
    git log -1 --format='commit %h %s' 2>/dev/null
} 2>&1 | tee "$OUT/env.txt"
if [ "${1:-}" = more ]; then
    # Where the step's time goes (what limits MFU), then the layer scan's cost on a GPU.
    timeout 100 python3 benchmarks/step_profile.py --preset gated-125m --steps 5 --top 20 \
        2>&1 | tee "$OUT/profile-gated-125m.txt"
    timeout 110 python3 benchmarks/compile.py --preset gated-125m --depths 12 --steps 10 \
        2>&1 | tee "$OUT/compile-gated-125m.txt"
    exit 0
fi
# pytest -m gpu: the kernel's compiled checks and whatever else is marked gpu (<= 3 min).
timeout 200 python3 -m pytest -q -m gpu -o addopts="" -p no:cacheprovider 2>&1 | tail -30 | tee "$OUT/pytest-gpu.txt"
# The GPU bench (<= 5 min): kernel check, scan table, 125M presets' tokens/s and MFU, pipeline.
timeout 320 python3 benchmarks/gpu.py 2>&1 | tee "$OUT/bench-gpu.txt"
