"""Which Web API methods exist and which arguments they require, per Slack's OpenAPI file.

The fake answers from this table instead of a hand-written list so that a typo in a
method name, or a forgotten required argument, fails the way it would against Slack.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SPEC_ENV_VAR = "SLACK_OPENAPI_SPEC"
SPEC_RELATIVE_PATH = Path("shared", "slack", "slack_web_openapi_v2.json")
# Slack's published description (MIT, see vendor/LICENSE), kept so the tests run from a
# clone that has no shared/ folder beside it. ../shared, when present, is preferred.
VENDORED_SPEC = Path(__file__).with_name("vendor") / "slack_web_openapi_v2.json.gz"


@dataclass(frozen=True)
class MethodSpec:
    """What the fake checks about one Web API method before answering it."""

    name: str
    required: frozenset[str]
    # Only the OAuth exchange methods take no token (they authenticate the app instead).
    needs_token: bool = True


# The published OpenAPI file predates Slack's external-upload flow (2022). slack_sdk's
# files_upload_v2 -- the only supported way to upload since files.upload was retired --
# calls exactly these two methods (plus a POST to the returned upload_url, which is not a
# Web API method). Without these entries every upload would be reported as unknown_method.
# Required arguments as documented on docs.slack.dev/reference/methods/<name>.
SUPPLEMENT: dict[str, MethodSpec] = {
    "files.getUploadURLExternal": MethodSpec(
        "files.getUploadURLExternal", frozenset({"filename", "length"})
    ),
    "files.completeUploadExternal": MethodSpec(
        "files.completeUploadExternal", frozenset({"files"})
    ),
    # Socket Mode (2021) is newer than the file too: an app-level token, no arguments.
    "apps.connections.open": MethodSpec("apps.connections.open", frozenset()),
}


def find_spec_path() -> Path:
    """Locate the OpenAPI file: ``$SLACK_OPENAPI_SPEC``, else ``shared/slack/...`` in an
    ancestor, else the vendored copy.

    Walking up from this package (rather than hard-coding ``/work/shared``) finds the file
    beside the repository (``<repo>/../shared``) from any checkout or worktree location.
    """
    override = os.environ.get(SPEC_ENV_VAR)
    if override:
        return Path(override)
    for ancestor in Path(__file__).resolve().parents:
        candidate = ancestor / SPEC_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    # A clone on its own (a newcomer's machine): the copy kept with the tests.
    return VENDORED_SPEC


@lru_cache(maxsize=4)
def load_methods(path: Path) -> Mapping[str, MethodSpec]:
    """Parse the spec once per path (it is ~1 MB) into method name -> MethodSpec.

    The supplement only fills gaps: should the spec ever describe those methods, it wins.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        paths: dict[str, dict[str, Any]] = json.load(fh)["paths"]
    from_spec = {
        route.lstrip("/"): _method_spec(route.lstrip("/"), operations)
        for route, operations in paths.items()
    }
    return {**SUPPLEMENT, **from_spec}


def _method_spec(name: str, operations: dict[str, Any]) -> MethodSpec:
    """Collect parameters over all HTTP verbs of one path (Slack accepts POST for all)."""
    params = [
        param
        for operation in operations.values()
        if isinstance(operation, dict)
        for param in operation.get("parameters", [])
    ]
    # The spec lists `token` as a header, query or form parameter depending on the method;
    # slack_sdk always sends it as a Bearer header, so it is checked separately.
    required = frozenset(p["name"] for p in params if p.get("required") and p["name"] != "token")
    needs_token = any(p["name"] == "token" for p in params)
    return MethodSpec(name, required, needs_token)
