"""Multi-run experiments: pretrain, fine-tune and evaluate runs side by side over seeds."""

from birdie_ssm.experiments.runner import run_experiment
from birdie_ssm.experiments.spec import ExperimentSpec, load_spec, run_configs

__all__ = ["ExperimentSpec", "load_spec", "run_configs", "run_experiment"]
