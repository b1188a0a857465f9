"""Benchmarks: figures and ratios printed by ``make bench``; never run by ``make test``."""
