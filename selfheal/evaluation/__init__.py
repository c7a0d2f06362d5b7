"""Evaluation: datasets as files, evaluators, a concurrent runner, experiments, paired reports."""
