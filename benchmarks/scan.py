"""Scan benchmark: ``python benchmarks/scan.py [--quick]`` (same as ``birdie-ssm bench scan``)."""

from birdie_ssm.kernels.bench import main

if __name__ == "__main__":
    main()
