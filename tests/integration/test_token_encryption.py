"""Slack tokens at rest: the encrypted store, migration 0004 on existing rows, key
rotation, refusing to start without a key, and purging a workspace's records."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from cryptography.fernet import Fernet, InvalidToken
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.installations import EncryptedInstallationStore
from sop_core import db
from sop_core.config import get_settings
from sop_core.db import get_engine, get_sessionmaker
from sop_core.models import Action, Milestone
from sop_core.token_crypto import EncryptionKeyMissing

OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()
BOT, USER = "xoxb-1111-secret-bot", "xoxp-2222-secret-user"
# Rotating tokens come with refresh tokens; theirs are long (beyond the old 200 columns
# once encrypted).
REFRESH = "xoxe-1-" + "r" * 150


def installation(team: str = "T1") -> Installation:
    return Installation(app_id="A1", team_id=team, user_id="U1", bot_token=BOT,
                        bot_id="B1", bot_user_id="UB", bot_refresh_token=REFRESH,
                        bot_token_expires_in=43200, user_token=USER,
                        user_refresh_token=REFRESH + "u", user_token_expires_in=43200,
                        installed_at=datetime(2026, 12, 1, tzinfo=UTC).timestamp())


def raw(db_url: str) -> list[str]:
    with get_engine(db_url).connect() as connection:
        rows = connection.execute(text(
            "SELECT bot_token, bot_refresh_token, user_token, user_refresh_token "
            "FROM slack_installations UNION ALL "
            "SELECT bot_token, bot_refresh_token, NULL, NULL FROM slack_bots")).all()
    return [value for row in rows for value in row if value is not None]


def test_the_store_keeps_every_token_encrypted_and_reads_them_back(db_url: str) -> None:
    store = EncryptedInstallationStore(client_id="111.222", engine=get_engine(db_url),
                                       keys=[OLD_KEY])
    store.save(installation())
    stored = raw(db_url)
    assert len(stored) == 6  # bot, bot refresh, user, user refresh; bot and its refresh
    for value in stored:
        assert not any(token in value for token in (BOT, USER, REFRESH))
    found = store.find_installation(enterprise_id=None, team_id="T1")
    assert found is not None
    assert (found.bot_token, found.user_token, found.bot_refresh_token,
            found.user_refresh_token) == (BOT, USER, REFRESH, REFRESH + "u")
    bot = store.find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and (bot.bot_token, bot.bot_refresh_token) == (BOT, REFRESH)
    # Bolt's token rotation saves the refreshed installation through the same store.
    found.bot_token, found.bot_refresh_token = "xoxb-rotated", "xoxe-1-rotated"
    store.save(found)
    assert store.find_bot(enterprise_id=None, team_id="T1").bot_token == "xoxb-rotated"
    assert not any("rotated" in value for value in raw(db_url))
    with pytest.raises(Exception, match="cannot be decrypted"):  # the wrong key
        EncryptedInstallationStore(client_id="111.222", engine=get_engine(db_url),
                                   keys=[NEW_KEY]).find_bot(enterprise_id=None, team_id="T1")


def _insert_plain_rows(db_url: str) -> None:
    with get_engine(db_url).begin() as connection:
        connection.execute(text(
            "INSERT INTO slack_installations (client_id, app_id, team_id, user_id, bot_token, "
            "user_token, is_enterprise_install, installed_at) VALUES "
            "('111.222', 'A1', 'T1', 'U1', :bot, :user, false, :at)"),
            {"bot": BOT, "user": USER, "at": datetime(2026, 12, 1)})
        connection.execute(text(
            "INSERT INTO slack_bots (client_id, app_id, team_id, bot_token, "
            "is_enterprise_install, installed_at) VALUES "
            "('111.222', 'A1', 'T1', :bot, false, :at)"),
            {"bot": BOT, "at": datetime(2026, 12, 1)})


def test_migration_0004_encrypts_existing_rows_and_needs_the_key(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        db.downgrade(db_url, "0004-1")  # the revision before 0004
        before = db.current_revision(db_url)
        assert before != db.head_revision()
        _insert_plain_rows(db_url)
        monkeypatch.delenv("SOPGAP_ENCRYPTION_KEY", raising=False)
        with pytest.raises(EncryptionKeyMissing, match="SOPGAP_ENCRYPTION_KEY"):
            db.upgrade(db_url)
        assert db.current_revision(db_url) == before
        assert sorted(raw(db_url)) == sorted([BOT, USER, BOT])  # nothing was changed

        monkeypatch.setenv("SOPGAP_ENCRYPTION_KEY", f"{OLD_KEY}")
        db.upgrade(db_url)
        assert db.current_revision(db_url) == db.head_revision()
        assert all(BOT not in value and USER not in value for value in raw(db_url))
        store = EncryptedInstallationStore(client_id="111.222", engine=get_engine(db_url),
                                           keys=[OLD_KEY])
        found = store.find_installation(enterprise_id=None, team_id="T1")
        assert found is not None and (found.bot_token, found.user_token) == (BOT, USER)

        db.downgrade(db_url, "0004-1")  # decrypted again, for the older code
        assert sorted(raw(db_url)) == sorted([BOT, USER, BOT])
    finally:
        monkeypatch.setenv("SOPGAP_ENCRYPTION_KEY", OLD_KEY)
        db.upgrade(db_url)


def test_migration_0004_without_a_key_is_fine_when_no_token_is_stored(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOPGAP_ENCRYPTION_KEY", raising=False)
    db.downgrade(db_url, "0004-1")
    db.upgrade(db_url)
    assert db.current_revision(db_url) == db.head_revision()


def test_keys_rotate_reencrypts_every_row_under_the_first_key(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    EncryptedInstallationStore(client_id="111.222", engine=get_engine(db_url),
                               keys=[OLD_KEY]).save(installation())
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SOPGAP_ENCRYPTION_KEY", f"{NEW_KEY},{OLD_KEY}")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted the tokens of 2 rows" in result.output
    new, old = Fernet(NEW_KEY), Fernet(OLD_KEY)
    for value in raw(db_url):
        assert new.decrypt(value.encode()).decode() in (BOT, USER, REFRESH, REFRESH + "u")
        with pytest.raises(InvalidToken):
            old.decrypt(value.encode())
    # The old key can go now; a key that opens nothing is refused, and nothing changes.
    before = raw(db_url)
    monkeypatch.setenv("SOPGAP_ENCRYPTION_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 1 and "nothing was changed" in result.output
    assert raw(db_url) == before


@pytest.mark.parametrize(("env", "expected", "code"), [
    ({"SOPGAP_ENCRYPTION_KEY": "not-a-key"}, "key 1 is not a Fernet key", 2),
    ({"SOPGAP_ENCRYPTION_KEY": f"{OLD_KEY}, oops"}, "key 2 is not a Fernet key", 2),
    ({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s", "SLACK_SIGNING_SECRET": "x"},
     "SOPGAP_ENCRYPTION_KEY is not set", 2),
])
def test_bad_or_missing_keys_refuse_to_start_in_one_line(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
        expected: str, code: int) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output
    assert OLD_KEY not in result.output


def test_workspace_purge_deletes_one_workspaces_records_only(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = get_sessionmaker(db_url)
    with sessions.begin() as session:
        for team in ("T1", "T2"):
            session.add(Action(team_id=team, title="Relist 12 Snacks SKUs", owner_id="U7",
                               creator_id="U1", metric_name="revenue", baseline=1, target=2,
                               expected_impact=3, due_date=date(2026, 12, 10),
                               channel_id="C1", milestones=[
                                   Milestone(name="Audit", due_date=date(2026, 12, 8))]))
    EncryptedInstallationStore(client_id="111.222", engine=get_engine(db_url),
                               keys=[OLD_KEY]).save(installation("T1"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(cli, ["workspace", "purge", "T1"], input="n\n").exit_code == 1
    assert runner.invoke(cli, ["workspace", "purge", "", "--yes"]).exit_code == 2
    result = runner.invoke(cli, ["workspace", "purge", "T1", "--yes"])
    assert result.exit_code == 0, result.output
    assert "actions 1" in result.output and "milestones 1" in result.output
    with sessions() as session:
        assert [a.team_id for a in session.query(Action)] == ["T2"]
        assert session.query(Milestone).count() == 1
    assert raw(db_url) == []
