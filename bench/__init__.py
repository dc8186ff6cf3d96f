"""Benchmarks that print measured figures and ratios side by side (`make bench`)."""
