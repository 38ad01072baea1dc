"""Experiments: stable sweeps, MLPerf-style SLO scenarios, experiment files and their results folders."""
