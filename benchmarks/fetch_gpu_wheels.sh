#!/bin/bash
# Download into .whl/ the cp312 manylinux wheels the GPU machine lacks (../shared/gpu/wheels.txt:
# pydantic and gymnasium with their dependencies), for benchmarks/gpu_device.sh to install there.
# Pinned to the versions the project is tested with: pydantic pins its core exactly, and
# --no-deps keeps numpy and the rest of the machine's own packages out of .whl/.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .whl
python -m pip download -q --dest .whl --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --implementation cp --no-deps \
    pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 \
    typing-extensions==4.16.0 gymnasium==1.4.0 farama-notifications==0.0.6
ls .whl
