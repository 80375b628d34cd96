"""Settings from the environment (docs/reference/cli.md), read once and cached.

Slack credentials keep their conventional names (``SLACK_*``); the product's own
settings use the ``SOPGAP_`` prefix.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_FILE = "sopgap.db"
DATABASES = ("sqlite", "postgresql", "postgres")  # URL schemes, before any +driver


def normalise_database_url(url: str) -> str:
    """Accept the ``postgres://`` URLs hosting platforms hand out, and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _id_list(value: Any) -> Any:
    """``T1,T2`` (or a JSON list) into a list of ids; blank means an empty list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


TeamIds = Annotated[list[str] | None, NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SOPGAP_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}",
        validation_alias=AliasChoices("DATABASE_URL", "SOPGAP_DATABASE_URL"),
    )

    # Slack (docs/reference/cli.md): conventional names, no prefix.
    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: SecretStr | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")

    # Security model (README "Security model").
    # Fernet keys for the tokens at rest, comma-separated: the first encrypts, all decrypt.
    encryption_key: SecretStr | None = None
    # Workspaces served the data loaded without --team. None: in single-token mode the
    # token's own workspace, in OAuth mode nobody; an empty value: nobody.
    shared_data_teams: TeamIds = None
    # Team or enterprise ids that may install and use the app. None: anyone.
    allowed_teams: TeamIds = None
    # Seconds to wait for a Slack answer: listeners answer a person who is waiting; the
    # clock can wait longer (a timed-out send is retried by its next pass).
    slack_timeout: float = Field(10.0, gt=0)
    slack_clock_timeout: float = Field(30.0, gt=0)
    # How many commands per web worker do their work after ack() at once (gap queries,
    # charts, exports, their database writes; a command waiting on Slack lends its slot
    # out: bot/work_slots.py). Few: they share the worker's interpreter lock with the
    # threads answering Slack, whose acks must not wait behind a burst of gap queries.
    work_slots: int = Field(2, ge=1, le=64)

    # Gap maths and trigger rule (docs/reference/gap-maths.md); channels may override the rule.
    threshold_pct: float = Field(5.0, ge=0)
    materiality_floor: float = Field(0.0, ge=0)
    fiscal_year_start_month: int = Field(1, ge=1, le=12)
    timezone: str = "UTC"
    # How numbers read (sop_core/formatting.py): a Babel locale and a unit per metric,
    # written "revenue=EUR,volume=units".
    locale: str = "en_US"
    units: Annotated[dict[str, str], NoDecode] = {}

    # Follow-up: days before a milestone/due date when owners get a nudge.
    nudge_days_before: list[int] = [3, 1]
    nudge_hour: int = Field(9, ge=0, le=23)
    nudge_on_weekends: bool = False
    leads: list[str] = []

    # Optional scheduled SQL refresh: a SQLAlchemy URL + query, on a cron expression.
    refresh_url: SecretStr | None = None
    refresh_query: str | None = None
    refresh_cron: str = "0 6 * * *"
    # The source the refresh loads: it replaces that source's rows only (sopgap load --source).
    refresh_source: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

    # Operations: the clock's sweep interval, and how old its last pass may be before
    # readiness calls it stopped (default: three intervals); snapshots kept (a count
    # and/or days; the latest of each source and those open gaps use are always kept);
    # settled outbox records kept; log format ("text" or "json"); the small health and
    # metrics port of the Socket Mode and clock processes (off when unset).
    clock_interval: float = Field(60.0, gt=0)
    clock_stale_after: float | None = Field(None, gt=0)
    keep_snapshots: int | None = Field(None, ge=1)
    keep_snapshot_days: int | None = Field(None, ge=1)
    keep_outbox_days: int = Field(400, ge=1)
    log_format: Literal["text", "json"] = "text"
    health_port: int | None = Field(None, ge=1, le=65535)

    @property
    def clock_stale_seconds(self) -> float:
        return self.clock_stale_after or 3 * self.clock_interval

    @field_validator("database_url")
    @classmethod
    def _driver_url(cls, value: str) -> str:
        # Checked here, not at the first connection, where SQLAlchemy would raise a
        # traceback. The message never quotes the URL: it may hold a password.
        scheme = value.partition("://")[0] if "://" in value else ""
        if scheme.partition("+")[0] not in DATABASES:
            raise ValueError("not a SQLite or PostgreSQL URL (e.g. sqlite:///sopgap.db or "
                             "postgresql://user@host:5432/sopgap)"
                             + (f"; its scheme is {scheme!r}" if scheme else ""))
        return normalise_database_url(value)

    @field_validator("slack_signing_secret")
    @classmethod
    def _non_blank_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("empty: set it to the app's Signing Secret (Basic "
                             "Information), or unset it for Socket Mode")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = [key.strip() for key in value.get_secret_value().split(",") if key.strip()]
        if not keys:
            raise ValueError("SOPGAP_ENCRYPTION_KEY is empty: generate a key with "
                             "`sopgap keys new`")
        from cryptography.fernet import Fernet  # only when a key is set: 0.02 s

        for number, key in enumerate(keys, 1):
            try:
                Fernet(key)
            except ValueError:
                raise ValueError(f"SOPGAP_ENCRYPTION_KEY: key {number} is not a Fernet key "
                                 "(generate one with `sopgap keys new`)") from None
        return SecretStr(",".join(keys))

    @field_validator("shared_data_teams", "allowed_teams", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        return _id_list(value)

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/Paris)") from exc
        return value

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        from sop_core.formatting import parse_locale

        return parse_locale(value)

    @field_validator("units", mode="before")
    @classmethod
    def _units(cls, value: object) -> object:
        from sop_core.formatting import parse_units

        return parse_units(value) if isinstance(value, str) else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def oauth_mode(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)

    @property
    def encryption_keys(self) -> list[str]:
        return (self.encryption_key.get_secret_value().split(",")
                if self.encryption_key is not None else [])



@lru_cache
def get_settings() -> Settings:
    return Settings()
