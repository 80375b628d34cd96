"""A web worker's warm-up makes one Web API call through slack_sdk to a one-shot local
server (bot/slack_client.py:rehearse_call), never to Slack."""

from __future__ import annotations

import socket
import threading

import pytest

from bot.slack_client import rehearse_call


def test_the_rehearsal_talks_only_to_its_own_local_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    connected: list[tuple[str, int]] = []
    real = socket.create_connection

    def watched(address, *args, **kwargs):  # type: ignore[no-untyped-def]
        connected.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", watched)
    before = threading.active_count()
    rehearse_call()
    [(host, port)] = connected
    assert host == "127.0.0.1" and port > 0
    assert threading.active_count() == before  # the one-shot server is gone
