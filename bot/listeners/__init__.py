"""Listener groups, one ``register(app)`` each."""

from slack_bolt import App

from bot.listeners import commands


def register(app: App) -> None:
    commands.register(app)
