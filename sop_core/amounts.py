"""Reading amounts people type; the parser lives with the number format."""

from sop_core.formatting import parse_amount

__all__ = ["parse_amount"]
