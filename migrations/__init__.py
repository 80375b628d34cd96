"""Alembic migrations (shipped inside the wheel so `sopgap db upgrade` works anywhere)."""
