"""Bundled sample data for ``sopgap demo`` (see ``generate.py`` for how it is made)."""

from pathlib import Path

SAMPLE_CSV = Path(__file__).with_name("sales_plan.csv")
