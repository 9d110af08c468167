"""Benchmarks (not tests): throughput and timing scripts run as `python -m bench.<name>`."""
