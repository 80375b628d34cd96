"""The S&OP gap domain: data loading, gap maths, persistence and services.

Nothing here imports Slack or scheduler code; adapters live in ``bot``.
"""
