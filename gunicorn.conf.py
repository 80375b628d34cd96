"""Gunicorn finds this file in the working folder: the settings live in
``bot/gunicorn_conf.py`` (installed with the package), read from the environment."""

from bot.gunicorn_conf import *  # noqa: F403
