"""The Web API client and what makes Slack calls dependable.

- ``make_client``: Slack's (or ``SLACK_API_URL``'s) base URL, a timeout per process kind
  and retries: connection errors (slack_sdk's only default), 429 after ``Retry-After``,
  5xx, and timeouts of the methods that are safe to call twice.
- ``in_channel``: a post or an upload into a channel, only once the bot is in it: a
  public channel it is not in yet is joined first (``conversations.join``), a private
  one it is not in is refused with "invite @sopgap first" (the bot's membership comes
  from ``conversations.info``, cached by ``bot.directory``); ``post_in_channel`` and
  ``upload_files`` use it. These two
  raise Slack's silence (a timeout, a lost connection) as :class:`SlackUnanswered`, a
  ``SlackApiError``, so callers handle a refusal and no answer alike.
- ``Responder``: Bolt's ``respond()`` (a ``response_url`` post) with the same retries, and
  ``chat.postEphemeral`` as a fallback; Bolt's own ignores a failed post.
- ``diagnose``: whether a failed send is worth retrying (the outbox's classifier).

Retrying a call Slack may already have carried out can repeat it: 429 is never carried
out; 5xx and timeouts of ``chat.postMessage`` rarely are, which is why a timed-out post
is not retried here (the clock's next pass does it; see ``sop_core.outbox``).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from slack_bolt.context.respond import Respond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient, WebhookResponse

from bot import metrics
from bot.directory import DIRECTORY
from bot.errors import UserError
from bot.work_slots import lent_out
from sop_core import outbox
from sop_core.config import Settings
from sop_core.visibility import ChannelKind

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_IN_CHANNEL = ("I am not in this channel and cannot join it: invite @sopgap first "
                  "(`/invite @sopgap`), then try again.")
NO_ANSWER = "no_answer"  # the error code of SlackUnanswered
# Failures of the network or of Slack's side that a later attempt may not meet.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (TimeoutError, URLError, ConnectionError,
                                                 HTTPException)
# Calls that change nothing when made twice: retried when Slack does not answer in time.
IDEMPOTENT_METHODS = frozenset({
    "auth.test", "users.info", "conversations.join", "conversations.info",
    "conversations.history", "conversations.replies", "chat.update",
    "views.publish", "views.update", "chat.getPermalink", "files.getUploadURLExternal",
})
SERVER_ERRORS = frozenset({500, 502, 503, 504})
# Slack errors no retry can cure: the place or person is gone or out of reach, the token
# is no longer valid, or the message itself is refused.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "is_archived", "not_in_channel", "account_inactive",
    "user_not_found", "users_not_found", "user_disabled", "cannot_dm_bot",
    "messages_tab_disabled", "restricted_action", "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel",
    "team_access_not_granted", "ekm_access_denied", "access_denied", "no_permission",
    "token_revoked", "token_expired", "org_login_required",
    "method_not_supported_for_channel_type",
    "invalid_blocks", "invalid_blocks_format", "invalid_attachments", "msg_too_long",
    "msg_blocks_too_long", "no_text", "too_many_attachments", "invalid_arguments",
    "invalid_arg_name", "invalid_array_arg", "invalid_charset", "invalid_form_data",
    "invalid_post_type", "missing_post_type", "invalid_json", "json_not_object",
    "invalid_metadata_format", "invalid_metadata_schema", "cant_update_message",
    "edit_window_closed", "message_not_found", "file_not_found", "file_uploads_disabled",
})
TRANSIENT_ERRORS = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
    "request_timeout", "team_added_to_org", NO_ANSWER,
    # The app's own configuration (a wrong token, a scope missing from the install): every
    # send fails until an operator fixes it, after which what is due should still go out.
    "invalid_auth", "not_authed", "missing_scope", "not_allowed_token_type",
})
UPLOAD_ATTEMPTS = 3  # the bytes' POST to an upload URL (nothing is shared before step 3)
UPLOAD_BACKOFF = 0.5  # seconds, doubled after each failed attempt
RETRY_AFTER_MAX = 60.0  # seconds: a longer Retry-After on an upload URL is not waited out


# ------------------------------------------------------------------------------ client

class ServerErrorRetryHandler(RetryHandler):
    """5xx (slack_sdk's own handler leaves out 502 and 504, which load balancers send)."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return response is not None and response.status_code in SERVER_ERRORS


class TimeoutRetryHandler(RetryHandler):
    """No answer in time from a method that is safe to call twice (``IDEMPOTENT_METHODS``).
    slack_sdk retries none: a read timeout is not a ``URLError``."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return (isinstance(error, TimeoutError) and response is None
                and method_of(request.url) in IDEMPOTENT_METHODS)


def method_of(url: str | None) -> str:
    """``chat.postMessage`` from ``https://slack.com/api/chat.postMessage``."""
    return urlsplit(url or "").path.rstrip("/").rpartition("/")[2]


class RateLimitCounter(RetryHandler):
    """Counts every 429 answer by method (retried or not) for ``/metrics``; retries none,
    so the handlers after it decide."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=10**9)

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        if response is not None and response.status_code == 429:
            metrics.SLACK_RATE_LIMITED.labels(method_of(request.url)).inc()
        return False


class MeteredWebClient(WebClient):
    """slack_sdk's client, each API call counted by method, failures by error code."""

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        metrics.SLACK_CALLS.labels(api_method).inc()
        try:
            with lent_out():  # a command's work slot serves another while Slack answers
                return super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            metrics.SLACK_ERRORS.labels(api_method, error_code(error) or "error").inc()
            raise
        except Exception as error:
            metrics.SLACK_ERRORS.labels(api_method, type(error).__name__).inc()
            raise


def metered(client: WebClient) -> WebClient:
    """The same client, counted (Bolt builds a plain ``WebClient`` for each request)."""
    if isinstance(client, MeteredWebClient):
        return client
    return MeteredWebClient(token=client.token, base_url=client.base_url,
                            timeout=client.timeout, ssl=client.ssl, proxy=client.proxy,
                            headers=client.headers, team_id=client.default_params.get("team_id"),
                            logger=client.logger, retry_handlers=client.retry_handlers)


def retry_handlers() -> list[RetryHandler]:
    return [
        RateLimitCounter(),
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),  # waits Retry-After
        ServerErrorRetryHandler(max_retry_count=2),
        TimeoutRetryHandler(max_retry_count=1),
    ]


def make_client(settings: Settings, token: str | None, *,
                timeout: float | None = None) -> WebClient:
    """A client for ``token``; ``timeout`` defaults to the listeners' (``slack_timeout``)."""
    seconds: Any = timeout or settings.slack_timeout  # slack_sdk says int; urllib takes float
    return MeteredWebClient(token=token, base_url=settings.slack_api_url, timeout=seconds,
                            retry_handlers=retry_handlers())


# ------------------------------------------------------------------------------ errors

class SlackUnanswered(SlackApiError):
    """Slack did not answer (timeout, connection lost): whether it carried the call out is
    unknown. A ``SlackApiError`` with error ``no_answer``."""

    def __init__(self, method: str, cause: Exception) -> None:
        super().__init__(f"{method}: no answer from Slack ({type(cause).__name__})",
                         _answer(method, NO_ANSWER, status=0))
        self.method = method


def _answer(method: str, error: str, *, status: int) -> SlackResponse:
    """A stand-in for the answer Slack did not give, for ``SlackApiError.response``."""
    return SlackResponse(client=None, http_verb="POST", api_url=method, req_args={},
                         data={"ok": False, "error": error}, headers={}, status_code=status)


class NotInChannel(UserError):
    """The bot is not in the channel and could not join it (private, archived, gone).
    ``join_error``: why (Slack's error, or what ``conversations.info`` said)."""

    def __init__(self, join_error: str, *, via: str = "conversations.join") -> None:
        super().__init__(NOT_IN_CHANNEL)
        self.join_error = join_error
        self.via = via


def answered(method: str, call: Callable[[], T]) -> T:
    """``call()``, with Slack's silence raised as :class:`SlackUnanswered`."""
    try:
        return call()
    except HTTPError as error:  # an answer, but not Slack's JSON (the upload URL's POST)
        raise SlackApiError(f"{method}: HTTP {error.code}",
                            _answer(method, f"http_{error.code}", status=error.code)) from error
    except TRANSPORT_ERRORS as error:
        raise SlackUnanswered(method, error) from error


def error_code(error: SlackApiError) -> str:
    return str(error.response.get("error") or "") if error.response is not None else ""


def is_transient(error: SlackApiError) -> bool:
    status = getattr(error.response, "status_code", 200)
    return status == 429 or status >= 500 or error_code(error) in TRANSIENT_ERRORS


def diagnose(error: Exception) -> outbox.Diagnosis:
    """How the outbox treats a failed send: Slack's lasting refusals are final at once;
    rate limits, 5xx, timeouts and connection errors are retried by every pass."""
    if isinstance(error, NotInChannel):
        return outbox.Diagnosis(outbox.ErrorKind.PERMANENT,
                                f"not_in_channel ({error.via}: {error.join_error})")
    if isinstance(error, SlackApiError):
        method = method_of(getattr(error.response, "api_url", ""))
        reason = f"{method}: {error_code(error) or 'error'}"
        if is_transient(error):
            return outbox.Diagnosis(outbox.ErrorKind.TRANSIENT, reason)
        if error_code(error) in PERMANENT_ERRORS:
            return outbox.Diagnosis(outbox.ErrorKind.PERMANENT, reason)
        return outbox.Diagnosis(outbox.ErrorKind.UNKNOWN, reason)
    if isinstance(error, TRANSPORT_ERRORS):
        return outbox.Diagnosis(outbox.ErrorKind.TRANSIENT,
                                f"no answer from Slack ({type(error).__name__})")
    return outbox.diagnose(error)


# ------------------------------------------------------------------------------ channels

def is_direct(channel: str) -> bool:
    """A person's id (their DM with the bot) or a DM: always open to the bot."""
    return channel[:1] in ("U", "W", "D")


def in_channel(client: WebClient, channel: str, call: Callable[[], T]) -> T:
    """``call()`` (a post or an upload into ``channel``) once the bot is in the channel:
    a public channel it is not in is joined first; a private one (or one Slack does not
    show the bot) raises :class:`NotInChannel` without any call into it. Should Slack
    still say ``not_in_channel`` (the bot was removed since), the cache is dropped and
    a public channel joined before the one retry.

    A join Slack refuses raises :class:`NotInChannel` (a ``UserError``: the person has to
    invite the bot); a question or a join that failed on Slack's side raises its
    ``SlackApiError``.
    """
    if not is_direct(channel):
        info = answered("conversations.info", lambda: DIRECTORY.channel(client, channel))
        if info is None:
            raise NotInChannel("channel_not_found", via="conversations.info")
        if not info.bot_member:
            if info.facts.kind is not ChannelKind.PUBLIC:
                raise NotInChannel(f"{info.facts.kind} channel", via="conversations.info")
            _join(client, channel)
    try:
        return call()
    except SlackApiError as error:
        if error_code(error) != "not_in_channel":
            raise
    DIRECTORY.forget(channel=channel)
    _join(client, channel)
    return call()


def _join(client: WebClient, channel: str) -> None:
    try:
        answered("conversations.join", lambda: client.conversations_join(channel=channel))
    except SlackApiError as error:
        if is_transient(error):
            raise
        raise NotInChannel(error_code(error) or "error") from None
    DIRECTORY.joined(client, channel)


def post_in_channel(client: WebClient, channel: str, **message: Any) -> dict[str, Any]:
    """``chat.postMessage``, joining a public channel first if the bot is not in it yet."""
    return in_channel(client, channel, lambda: _post(client, channel, message))


def _post(client: WebClient, channel: str, message: dict[str, Any]) -> dict[str, Any]:
    return answered("chat.postMessage",
                    lambda: client.chat_postMessage(channel=channel, **message).data)  # type: ignore[return-value]


@dataclass(frozen=True)
class Upload:
    """One file for :func:`upload_files`."""

    data: bytes
    filename: str
    title: str
    alt_txt: str | None = None


def upload_files(client: WebClient, channel: str, files: Sequence[Upload], *,
                 thread_ts: str | None = None, initial_comment: str | None = None) -> None:
    """Slack's external upload into ``channel`` (joining it if need be): per file, an
    upload URL (``files.getUploadURLExternal``) and the bytes POSTed to it; then one
    ``files.completeUploadExternal`` shares them all in one message.

    Done here rather than by slack_sdk's ``files_upload_v2``, which does not retry the
    bytes' POST: nothing is visible before the last step, so the first two are safe to
    retry (the bytes on 429, 5xx, timeouts and lost connections, up to
    ``UPLOAD_ATTEMPTS`` times); the last one gets the client's retries, like a post.
    """

    def send() -> None:
        shared: list[dict[str, Any]] = []
        for file in files:
            target = answered("files.getUploadURLExternal",
                              lambda f=file: client.files_getUploadURLExternal(  # type: ignore[misc]
                                  filename=f.filename, length=len(f.data), alt_txt=f.alt_txt))
            answered("upload", lambda t=target, f=file: _upload_bytes(  # type: ignore[misc]
                client, str(t["upload_url"]), f.data))
            shared.append({"id": target["file_id"], "title": file.title})
        answered("files.completeUploadExternal", lambda: client.files_completeUploadExternal(
            files=shared, channel_id=channel, thread_ts=thread_ts,
            initial_comment=initial_comment))

    in_channel(client, channel, send)


def _upload_bytes(client: WebClient, url: str, data: bytes) -> None:
    """POST the bytes to an upload URL; retried, since nothing is shared yet."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=client.ssl)]
    if client.proxy:
        handlers.append(urllib.request.ProxyHandler({"http": client.proxy,
                                                     "https": client.proxy}))
    opener = urllib.request.build_opener(*handlers)
    delay = UPLOAD_BACKOFF
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            with opener.open(urllib.request.Request(url, data=data, method="POST"),
                             timeout=client.timeout) as answer:
                answer.read()
            return
        except HTTPError as error:
            if attempt == UPLOAD_ATTEMPTS or not (error.code == 429 or error.code >= 500):
                raise
            wait = _retry_after(error) if error.code == 429 else delay
        except TRANSPORT_ERRORS:
            if attempt == UPLOAD_ATTEMPTS:
                raise
            wait = delay
        log.info("the upload of a file to Slack failed (attempt %d); trying again", attempt)
        time.sleep(wait)
        delay *= 2


def _retry_after(error: HTTPError) -> float:
    try:
        return min(float(error.headers.get("Retry-After") or 1), RETRY_AFTER_MAX)
    except ValueError:
        return 1.0


# ------------------------------------------------------------------------------ respond()

class Responder(Respond):
    """``respond()`` that does not drop a message: the ``response_url`` post gets the Web
    API client's retries; if it still fails, an ephemeral reply goes through
    ``chat.postEphemeral`` instead (when the channel and the person are known). A reply
    nobody could deliver raises ``SlackApiError``, to be logged, never lost silently.

    After a ``response_url`` timeout Slack may have shown the reply already: the fallback
    can then show it twice (only to that person).
    """

    def __init__(self, *, response_url: str, client: WebClient, channel_id: str | None,
                 user_id: str | None, timeout: float) -> None:
        super().__init__(response_url=response_url, proxy=client.proxy, ssl=client.ssl)
        self.client = client
        self.channel_id = channel_id
        self.user_id = user_id
        self.timeout = timeout

    def __call__(self, text: str | dict = "", blocks: Any = None, attachments: Any = None,  # type: ignore[override]
                 response_type: str | None = None, replace_original: bool | None = None,
                 delete_original: bool | None = None, unfurl_links: bool | None = None,
                 unfurl_media: bool | None = None, thread_ts: str | None = None,
                 metadata: dict[str, Any] | None = None) -> WebhookResponse:
        if isinstance(text, dict):
            message = _build_message(**text)
        else:
            message = _build_message(
                text=text, blocks=blocks, attachments=attachments, response_type=response_type,
                replace_original=replace_original, delete_original=delete_original,
                unfurl_links=unfurl_links, unfurl_media=unfurl_media, thread_ts=thread_ts,
                metadata=metadata)
        assert self.response_url is not None
        seconds: Any = self.timeout
        webhook = WebhookClient(url=self.response_url, timeout=seconds, proxy=self.proxy,
                                ssl=self.ssl, retry_handlers=retry_handlers())
        try:
            with lent_out():  # a command's work slot serves another while Slack answers
                response = webhook.send_dict(message)
            problem = f"HTTP {response.status_code}"
        except TRANSPORT_ERRORS as error:
            response, problem = None, f"no answer ({type(error).__name__})"
        if response is not None and response.status_code == 200:
            return response
        return self._fall_back(message, problem, response)

    def _fall_back(self, message: dict[str, Any], problem: str,
                   response: WebhookResponse | None) -> WebhookResponse:
        ephemeral = (message.get("response_type", "ephemeral") == "ephemeral"
                     and not message.get("replace_original")
                     and not message.get("delete_original"))
        if not (ephemeral and self.channel_id and self.user_id):
            status = response.status_code if response is not None else 0
            raise SlackApiError(f"the response_url post failed ({problem})",
                                _answer("response_url", "response_url_failed", status=status))
        log.warning("the response_url post failed (%s): replying with chat.postEphemeral",
                    problem)
        reply = {k: v for k, v in message.items() if k in {"text", "blocks", "thread_ts"}}
        answered("chat.postEphemeral", lambda: self.client.chat_postEphemeral(
            channel=self.channel_id, user=self.user_id, **reply))
        return WebhookResponse(url=self.response_url or "", status_code=200,
                               body="ok (chat.postEphemeral)", headers={})


def dependable_respond(context: dict[str, Any], settings: Settings) -> None:
    """Put a :class:`Responder` in a Bolt context that has a ``response_url``."""
    url = context.get("response_url")
    if url:
        context["respond"] = Responder(response_url=url, client=context["client"],
                                       channel_id=context.get("channel_id"),
                                       user_id=context.get("user_id"),
                                       timeout=settings.slack_timeout)


# ------------------------------------------------------------------------------ warm-up

def rehearse_call() -> None:
    """One Web API call through slack_sdk, answered by a one-shot server on 127.0.0.1:
    Slack is not called, and a worker's first real call then finds urllib's opener
    built, the host name codec imported and the parsers' patterns compiled (2–4 ms of
    the first command after a restart)."""
    import http.server

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Answer) as server:
        answering = threading.Thread(target=server.handle_request, daemon=True)
        answering.start()
        WebClient(base_url=f"http://127.0.0.1:{server.server_port}/api/",
                  timeout=2).api_call("api.test", json={"rehearsal": True})
        answering.join(timeout=2)
