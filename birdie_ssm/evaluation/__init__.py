"""Evaluation: retrieval tasks, generation, experiments, reports and plots."""
