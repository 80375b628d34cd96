"""Listener groups, one ``register(app)`` each."""

from slack_bolt import App

import bot.listeners.channel_commands  # noqa: F401  (its @subcommand handlers register)
import bot.listeners.history as _history  # noqa: F401  (its @subcommand handlers register)
import bot.listeners.leads as _leads  # noqa: F401  (its @subcommand handlers register)
from bot.listeners import actions, charts, commands, home, membership, threads


def register(app: App) -> None:
    commands.register(app)
    actions.register(app)
    threads.register(app)
    home.register(app)
    charts.register(app)
    membership.register(app)
