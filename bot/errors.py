"""Errors the Slack side shows to people."""


class UserError(ValueError):
    """Input a person can fix: the message is shown to them, only to them."""
