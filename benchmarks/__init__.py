"""Speed and memory benchmarks of sopgap (not tests: they print figures, assert nothing).

Run from the repository root: ``python -m benchmarks.core --quick`` (see README.md here).
"""
