"""Per-method answers, shaped like the examples in Slack's docs and OpenAPI file.

Each builder runs only after the call passed the spec, auth and content checks; it may
still raise Rejected for conditions only the simulated state can detect.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from .models import Channel, Rejected, Team, UploadedFile
from .wire import Incoming
from .workspace import Workspace

Builder = Callable[[Workspace, Incoming, Team], dict[str, Any]]


def dm_channel_id(user_id: str) -> str:
    """The stable DM channel id the fake gives the conversation with ``user_id``."""
    return f"D{user_id}"


def _channel(args: dict[str, Any]) -> str:
    """Slack posts to a user id's DM and answers with the DM channel's id."""
    channel = str(args["channel"])
    return dm_channel_id(channel) if channel[:1] in ("U", "W") else channel


def auth_test(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    return {
        "ok": True,
        "url": team.url,
        "team": team.team_name,
        "user": team.bot_name,
        "team_id": team.team_id,
        "user_id": team.bot_user_id,
        "bot_id": team.bot_id,
        "is_enterprise_install": False,
    }


def _message(call: Incoming, team: Team, ts: str) -> dict[str, Any]:
    """The message object Slack echoes back: what was sent, as the bot user."""
    message: dict[str, Any] = {
        "type": "message",
        "user": team.bot_user_id,
        "bot_id": team.bot_id,
        "app_id": team.app_id,
        "team": team.team_id,
        "text": call.args.get("text", ""),
        "ts": ts,
    }
    for key in ("blocks", "attachments", "thread_ts", "metadata"):
        if key in call.args:
            message[key] = call.args[key]
    return message


# -- channels as state ------------------------------------------------------------------

DEFAULT_PAGE, MAX_PAGE = 100, 1000  # Slack's default and largest ``limit`` for these lists


def _page(items: Sequence[Any], call: Incoming) -> tuple[list[Any], str]:
    """One page of ``items`` after ``cursor``, and the next cursor ('' on the last page)."""
    cursor = str(call.args.get("cursor") or "")
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(cursor.encode(), validate=True).decode().split(":")[1])
        except (ValueError, IndexError):
            raise Rejected("invalid_cursor") from None
    try:
        limit = min(max(int(call.args.get("limit") or DEFAULT_PAGE), 1), MAX_PAGE)
    except ValueError:
        raise Rejected("invalid_limit") from None
    page = list(items[start:start + limit])
    end = start + len(page)
    following = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return page, following


def _seen_channel(ws: Workspace, call: Incoming, argument: str = "channel") -> Channel:
    """The channel named by ``argument``, as the bot may know it (else channel_not_found)."""
    channel = ws.channel(str(call.args[argument]))
    if not channel.visible_to_bot:
        raise Rejected("channel_not_found")
    return channel


def _postable(ws: Workspace, call: Incoming, argument: str = "channel") -> None:
    """A post into a channel the bot is not in is refused, as Slack does without
    ``chat:write.public``; a user id means their DM, which is always open."""
    channel_id = str(call.args.get(argument) or "")
    if not channel_id or channel_id[:1] in ("U", "W", "D"):
        return
    channel = _seen_channel(ws, call, argument)
    if channel.is_archived:
        raise Rejected("is_archived")
    if not channel.bot_member:
        raise Rejected("not_in_channel")


def conversations_info(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    return {"ok": True, "channel": _seen_channel(ws, call).info(team)}


def conversations_members(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    channel = _seen_channel(ws, call)
    people = set(ws.users) if channel.members is None else set(channel.members)
    if channel.bot_member:
        people.add(team.bot_user_id)
    page, following = _page(sorted(people), call)
    return {"ok": True, "members": page, "response_metadata": {"next_cursor": following}}


TYPE_OF = {"public_channel": lambda c: not (c.is_private or c.is_im or c.is_mpim),
           "private_channel": lambda c: c.is_private and not c.is_mpim,
           "mpim": lambda c: c.is_mpim, "im": lambda c: c.is_im}


def users_conversations(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """The conversations ``user`` (the bot by default) is in that the bot can see."""
    user = str(call.args.get("user") or team.bot_user_id)
    types = [t.strip() for t in str(call.args.get("types") or "public_channel").split(",")]
    unknown = [t for t in types if t not in TYPE_OF]
    if unknown:
        raise Rejected("invalid_types", f"users.conversations types {unknown}")
    exclude_archived = str(call.args.get("exclude_archived", "")).lower() in ("1", "true")
    found = [c for _, c in sorted(ws.channels.items())
             if any(TYPE_OF[t](c) for t in types) and c.visible_to_bot
             and (c.bot_member if user == team.bot_user_id else c.has_member(user))
             and not (exclude_archived and c.is_archived)]
    page, following = _page(found, call)
    return {"ok": True, "channels": [c.info(team) for c in page],
            "response_metadata": {"next_cursor": following}}


def conversations_join(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    channel = ws.channel(str(call.args["channel"]))
    if channel.is_private or channel.is_im or channel.is_mpim:
        raise Rejected("method_not_supported_for_channel_type" if channel.visible_to_bot
                       else "channel_not_found")
    if channel.is_archived:
        raise Rejected("is_archived")
    already = channel.bot_member
    channel.bot_member = True
    answer: dict[str, Any] = {"ok": True, "channel": channel.info(team)}
    if already:
        answer["warning"] = "already_in_channel"
    return answer


def chat_post_message(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    _postable(ws, call)
    ts = ws.next_ts()
    message = _message(call, team, ts)
    channel = ws.channel(_channel(call.args))
    if "thread_ts" in message:
        channel.replies.setdefault(str(message["thread_ts"]), []).append(message)
    if "thread_ts" not in message or call.args.get("reply_broadcast"):
        channel.messages.append(message)
    return {
        "ok": True,
        "channel": _channel(call.args),
        "ts": ts,
        "message": message,
    }


def chat_post_ephemeral(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    _postable(ws, call)
    return {"ok": True, "message_ts": ws.next_ts()}


def chat_update(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    _postable(ws, call)
    ts = str(call.args["ts"])
    kept = ws.channel(_channel(call.args)).messages
    for at, message in enumerate(kept):
        if message["ts"] == ts:  # Slack keeps what the update does not name (metadata)
            kept[at] = {**message, **_message(call, team, ts)}
    return {
        "ok": True,
        "channel": _channel(call.args),
        "ts": ts,
        "text": call.args.get("text", ""),
        "message": _message(call, team, ts),
    }


def conversations_history(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """The channel's top-level messages, newest first (see :func:`_messages_page`)."""
    channel = _readable(ws, call)
    return {**_messages_page(list(reversed(channel.messages)), call), "pin_count": 0}


def conversations_replies(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """A thread, oldest first: its parent message, then the replies."""
    channel = _readable(ws, call)
    thread_ts = str(call.args.get("ts") or "")
    parent = [m for m in channel.messages if m["ts"] == thread_ts]
    if not parent:
        raise Rejected("thread_not_found")
    return _messages_page(parent + channel.replies.get(thread_ts, []), call)


def _readable(ws: Workspace, call: Incoming) -> Channel:
    channel = _seen_channel(ws, call)
    if not channel.bot_member:
        raise Rejected("not_in_channel")
    return channel


def _messages_page(messages: list[dict[str, Any]], call: Incoming) -> dict[str, Any]:
    """One page of the messages after ``oldest`` and up to ``latest`` (exclusive unless
    ``inclusive``); their metadata only with ``include_all_metadata``, as Slack does."""
    def bound(name: str, default: float) -> float:
        try:
            return float(call.args.get(name) or default)
        except ValueError:
            raise Rejected("invalid_ts_" + name) from None

    oldest, latest = bound("oldest", 0.0), bound("latest", float("inf"))
    inclusive = str(call.args.get("inclusive", "")).lower() in ("1", "true")
    with_metadata = str(call.args.get("include_all_metadata", "")).lower() in ("1", "true")
    found = [message for message in messages
             if (oldest <= float(message["ts"]) <= latest if inclusive
                 else oldest < float(message["ts"]) < latest)]
    page, following = _page(found, call)
    if not with_metadata:
        page = [{k: v for k, v in message.items() if k != "metadata"} for message in page]
    return {"ok": True, "messages": page, "has_more": bool(following),
            "response_metadata": {"next_cursor": following}}


def chat_get_permalink(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    channel, ts = str(call.args["channel"]), str(call.args["message_ts"])
    return {
        "ok": True,
        "channel": channel,
        "permalink": f"{team.url}archives/{channel}/p{ts.replace('.', '')}",
    }


def conversations_open(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """One user -> their DM ``D<user>``; several -> a group DM; or reopen ``channel``."""
    if call.args.get("channel"):
        return {"ok": True, "channel": {"id": str(call.args["channel"])}}
    users = sorted(u for u in str(call.args.get("users", "")).split(",") if u)
    if not users:
        raise Rejected("users_list_not_supplied", "conversations.open needs users or channel")
    channel_id = dm_channel_id(users[0]) if len(users) == 1 else "G" + "".join(users)
    return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": channel_id}}


def users_info(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """A default user in UTC, overridden by whatever the test put in ``fake.users``."""
    user_id = call.args.get("user")
    if not user_id:
        raise Rejected("user_not_found", "users.info without a user argument")
    overrides = ws.users.get(str(user_id), {})
    user: dict[str, Any] = {
        "id": user_id,
        "team_id": team.team_id,
        "name": f"user{user_id}".lower(),
        "real_name": f"User {user_id}",
        "deleted": False,
        "is_bot": False,
        "is_admin": False,
        "is_owner": False,
        "tz": "UTC",
        "tz_offset": 0,
        "locale": "en-US",
    }
    user.update(overrides)
    user.setdefault("tz_label", user["tz"])
    user["profile"] = {
        "real_name": user["real_name"],
        "display_name": user["name"],
        "team": user["team_id"],
        **overrides.get("profile", {}),
    }
    return {"ok": True, "user": user}


def _view(ws: Workspace, call: Incoming, team: Team, key: str | None) -> dict[str, Any]:
    """The stored view: defaults, the posted view merged in, and a stable generated id."""
    known_id = ws.view_ids.get(key) if key else None
    view_id = str(call.args.get("view_id") or known_id or ws.new_id("V"))
    if key:
        ws.view_ids[key] = view_id
    view: dict[str, Any] = {
        "type": "modal",
        "team_id": team.team_id,
        "app_id": team.app_id,
        "bot_id": team.bot_id,
        "callback_id": "",
        "external_id": "",
        "private_metadata": "",
        "state": {"values": {}},
        "clear_on_close": False,
        "notify_on_close": False,
        "previous_view_id": None,
    }
    view.update(call.args.get("view") or {})
    view.update(id=view_id, root_view_id=view_id, hash=ws.new_id("H"))
    return {"ok": True, "view": view}


def _external_key(call: Incoming) -> str | None:
    external_id = (call.args.get("view") or {}).get("external_id") or call.args.get("external_id")
    return f"external:{external_id}" if external_id else None


def views_modal(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    return _view(ws, call, team, _external_key(call))


def views_publish(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """A user's Home tab keeps one view id however often it is republished."""
    return _view(ws, call, team, f"home:{call.args['user_id']}")


def oauth_v2_access(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """Exchange the code of a team added with ``add_team`` for its bot token, or (token
    rotation, ``grant_type=refresh_token``) a team's refresh token for a new token pair.

    Called without a token (the app authenticates with its client id and secret), so
    ``team`` is only the default team; the code decides which team installed the app.
    """
    basic_auth = call.headers.get("Authorization", "").startswith("Basic ")
    if not basic_auth and not (call.args.get("client_id") and call.args.get("client_secret")):
        raise Rejected("invalid_client_id", "oauth.v2.access without client credentials")
    if call.args.get("grant_type") == "refresh_token":
        installed = next((t for t in ws.teams.values() if t.refresh_token
                          and t.refresh_token == call.args.get("refresh_token")), None)
        if installed is None:
            raise Rejected("invalid_refresh_token")
        ws.revoked_tokens.add(installed.bot_token)  # the old token is dead from now on
        installed.rotations += 1
        installed.bot_token = f"{installed.bot_token.split('~')[0]}~{installed.rotations}"
        installed.refresh_token = f"{installed.refresh_token.split('~')[0]}~{installed.rotations}"
    else:
        installed = ws.team_for_code(str(call.args["code"]))
        if installed is None:
            raise Rejected("invalid_code")
    answer = {
        "ok": True,
        "app_id": installed.app_id,
        "authed_user": {"id": installed.authed_user_id},
        "scope": installed.scope,
        "token_type": "bot",
        "access_token": installed.bot_token,
        "bot_user_id": installed.bot_user_id,
        "team": {"id": installed.team_id, "name": installed.team_name},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    if installed.refresh_token:
        answer.update(refresh_token=installed.refresh_token,
                      expires_in=installed.token_expires_in)
    return answer


def files_get_upload_url_external(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """Hand out an upload URL on the fake itself, so the bytes come back here."""
    length = str(call.args["length"])
    if not length.isdigit():
        raise Rejected("invalid_arguments", f"length must be a byte count, got {length!r}")
    file_id = ws.new_id("F")
    ws.files[file_id] = UploadedFile(file_id, str(call.args["filename"]), int(length))
    return {"ok": True, "upload_url": f"{call.root_url}/upload/{file_id}", "file_id": file_id}


def _uploaded_file(ws: Workspace, entry: object) -> UploadedFile:
    """The file an entry of ``files`` names, if it can still be completed."""
    file_id = entry.get("id") if isinstance(entry, dict) else None
    record = ws.files.get(str(file_id))
    if record is None:
        raise Rejected("file_not_found", f"files entry {entry!r} names no issued file id")
    if not record.uploaded:
        raise Rejected("file_not_found", f"{file_id} completed before its bytes were uploaded")
    if record.completed:
        raise Rejected("file_not_found", f"{file_id} completed twice (Slack allows once)")
    return record


def files_complete_upload_external(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    entries = call.args["files"]
    if not isinstance(entries, list) or not entries:
        raise Rejected("invalid_arguments", "files must be a non-empty JSON array")
    _postable(ws, call, "channel_id")
    records = [(_uploaded_file(ws, entry), entry) for entry in entries]
    channels = str(call.args.get("channels", "")).split(",")
    for record, entry in records:
        record.completed = True
        record.title = entry.get("title") or record.filename
        record.channel_id = call.args.get("channel_id")
        record.channels = [channel for channel in channels if channel]
        record.thread_ts = call.args.get("thread_ts")
        record.initial_comment = call.args.get("initial_comment")
    return {"ok": True, "files": [{"id": r.id, "title": r.title} for r, _ in records]}


def apps_connections_open(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """A WebSocket URL for Socket Mode; only an app-level token may ask for one."""
    if call.token not in ws.app_tokens or ws.socket_mode_url is None:
        raise Rejected("invalid_auth", "apps.connections.open needs an app-level token")
    return {"ok": True, "url": ws.socket_mode_url}


def auth_revoke(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """The calling token is dead from now on (``test``: only say it would be)."""
    if str(call.args.get("test", "")).lower() in ("1", "true"):
        return {"ok": True, "revoked": False}
    assert call.token is not None  # (authenticated)
    ws.revoked_tokens.add(call.token)
    return {"ok": True, "revoked": True}


def ok(ws: Workspace, call: Incoming, team: Team) -> dict[str, Any]:
    """Every other method in the spec: accepted, nothing more to say."""
    return {"ok": True}


RESPONSES: dict[str, Builder] = {
    "auth.test": auth_test,
    "auth.revoke": auth_revoke,
    "apps.connections.open": apps_connections_open,
    "chat.postMessage": chat_post_message,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.update": chat_update,
    "chat.getPermalink": chat_get_permalink,
    "conversations.open": conversations_open,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "conversations.info": conversations_info,
    "conversations.members": conversations_members,
    "conversations.join": conversations_join,
    "users.conversations": users_conversations,
    "users.info": users_info,
    "views.open": views_modal,
    "views.push": views_modal,
    "views.update": views_modal,
    "views.publish": views_publish,
    "oauth.v2.access": oauth_v2_access,
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.completeUploadExternal": files_complete_upload_external,
}
