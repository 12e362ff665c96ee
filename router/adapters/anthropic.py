"""Anthropic's Messages API (``POST /v1/messages``) on top of chat completions.

Claude clients (the ``anthropic`` SDKs, Claude Code, agent frameworks) send
Messages requests; upstreams answer chat completions. This module maps one
onto the other and back, without I/O:

* :func:`to_chat` — a Messages request as a chat request (or
  :class:`~modelroute.router.adapters.TranslationError`, a 400 naming the field);
* :func:`from_chat` — a chat completion as a Messages answer;
* :class:`StreamTranslator` — chat chunks in, Messages SSE events out;
* :func:`error_body`, :func:`from_openai_error` — errors in Anthropic's shape;
* :func:`count_tokens` — ``POST /v1/messages/count_tokens``, estimated.

How things map:

* ``system`` (a string or text blocks) → the first message, role ``system``;
* content blocks: ``text`` → text; ``image`` (base64 or URL source) → an
  ``image_url`` part (base64 as a ``data:`` URL); ``tool_use`` in an assistant
  turn → ``tool_calls`` with the input as a JSON string; ``tool_result`` → a
  ``tool`` message per result, in order, ahead of the rest of that user turn
  (chat needs tool answers right after the assistant's calls);
* ``tools`` → function tools (``input_schema`` → ``parameters``, ``strict`` kept);
  ``tool_choice`` auto/any/tool/none → auto/required/{function}/none;
  ``disable_parallel_tool_use`` → ``parallel_tool_calls: false``;
* ``max_tokens`` → ``max_tokens``; ``stop_sequences`` → ``stop``;
  ``temperature``, ``top_p`` as they are; ``metadata.user_id`` → ``user``;
* ``thinking`` ``enabled`` → ``reasoning_effort`` by budget (under 4,096
  tokens low, under 16,384 medium, else high); ``output_config.effort`` →
  ``reasoning_effort`` as named (it wins over ``thinking``);
  ``output_config.format`` (a JSON schema) → ``response_format``;
* ``stream`` → ``stream`` with ``stream_options.include_usage``.

Answers: ``reasoning_content`` (or ``reasoning``) → a ``thinking`` block first,
then the text, then one ``tool_use`` block per tool call; finish reasons
stop → ``end_turn`` (``tool_use`` when the answer holds tool calls, whatever
the upstream said), length → ``max_tokens``, tool_calls → ``tool_use``,
content_filter → ``refusal``; usage ``input_tokens`` is the prompt less its
cached part, which is ``cache_read_input_tokens``.

Limits (what a Claude client should know):

* Refused with a 400 naming the field: ``document`` blocks (PDFs, plain-text
  documents, and so citations), ``search_result`` blocks, ``container_upload``,
  images from the Files API (``source.type: file``), server tools and
  Anthropic-defined tools (web search/fetch, code execution, bash, text
  editor, computer use, memory, tool search: anything with a ``type`` other
  than ``custom``), ``mcp_servers``, ``container``, ``context_management``,
  ``inference_geo`` (a data-residency promise the router cannot keep),
  ``thinking.type`` other than enabled/disabled/adaptive, and any field the
  Messages API does not define (as Anthropic itself refuses them).
* Dropped, as hints that change no answer: ``cache_control`` markers (prompt
  caching is the upstream's own affair; its hits still show in
  ``cache_read_input_tokens``), ``service_tier``, ``speed``, ``diagnostics``,
  ``user_profile_id``, ``workspace_id``; ``thinking`` ``disabled`` and
  ``adaptive`` (the upstream's default); ``citations`` on text blocks of past
  answers; ``is_error`` on a tool result (chat has no flag; the result's text
  says what went wrong).
* Dropped because chat upstreams do not take them back: ``thinking`` and
  ``redacted_thinking`` blocks of past turns (Anthropic itself drops them
  from earlier turns). Answers carry thinking with an empty ``signature``.
* ``top_k`` passes through as ``top_k``: vLLM, SGLang and most open-model
  hosts honour it; OpenAI refuses it with a 400, which reaches the client.
* Images inside a ``tool_result`` move to a user message right after the tool
  messages: chat tool messages carry text only.
* Several text blocks of a tool result join with newlines; a system prompt's
  text blocks join with blank lines.
* ``stop_reason: stop_sequence`` is reported only when the upstream says
  which stop string matched (vLLM's ``stop_reason``); otherwise a stop is
  ``end_turn``.
* A tool call whose arguments are not a JSON object gets ``input: {}`` in a
  whole answer (a stream relays the arguments as they come).
* ``max_tokens`` goes upstream as ``max_tokens``; OpenAI's reasoning models
  want ``max_completion_tokens``, a per-target rename for the proxy.
* A stream's ``message_start`` has ``input_tokens`` 0 unless the caller knows
  better: chat reports usage at the end, so the final counts come in
  ``message_delta``.
* A stream whose upstream interleaves the arguments of two tool calls (no
  known provider does) cannot be expressed as Messages blocks; it ends with
  an ``error`` event.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelroute.router.adapters import TranslationError
from modelroute.router.adapters.chat import (
    ChatStreamReader,
    chat_usage,
    reasoning_of,
    tool_calls_of,
    tool_delta,
)
from modelroute.router.tokens import estimate_tokens

__all__ = [
    "StreamTranslator",
    "count_tokens",
    "error_body",
    "error_type",
    "from_chat",
    "from_openai_error",
    "to_chat",
]

# --- requests ----------------------------------------------------------------

_TRANSLATED = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "stream",
    "thinking",
    "output_config",
}
_DROPPED = {
    "cache_control",
    "service_tier",
    "speed",
    "diagnostics",
    "user_profile_id",
    "workspace_id",
}
_REFUSED = {
    "container": "containers (code execution sessions)",
    "mcp_servers": "MCP servers",
    "context_management": "context management",
    "inference_geo": "a data-residency promise (the router cannot say where an upstream runs)",
}
_THINKING_LOW = 4096
_THINKING_MEDIUM = 16384


def to_chat(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Messages request as a chat completions request; TranslationError if it cannot be."""
    return _translate(payload, counting=False)


def count_tokens(payload: Mapping[str, Any]) -> dict[str, int]:
    """``POST /v1/messages/count_tokens``: the router's estimate of the translated prompt."""
    return {"input_tokens": estimate_tokens(_translate(payload, counting=True))}


def _translate(payload: Mapping[str, Any], *, counting: bool) -> dict[str, Any]:
    for key in payload:
        if key in _REFUSED:
            raise TranslationError(f"{key}: {_REFUSED[key]} cannot be served by this router.", key)
        if key not in _TRANSLATED and key not in _DROPPED:
            raise TranslationError(f"{key}: Extra inputs are not permitted", key)
    chat: dict[str, Any] = {}
    if "model" in payload:
        chat["model"] = payload["model"]
    messages: list[dict[str, Any]] = []
    system = payload.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _system_text(system)})
    given = payload.get("messages")
    if not isinstance(given, list):
        raise TranslationError("messages: Field required (an array of messages)", "messages")
    for i, message in enumerate(given):
        messages.extend(_message(message, f"messages.{i}"))
    chat["messages"] = messages

    if not counting:
        max_tokens = payload.get("max_tokens")
        if max_tokens is None:
            raise TranslationError("max_tokens: Field required", "max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise TranslationError("max_tokens: must be an integer of at least 1", "max_tokens")
        chat["max_tokens"] = max_tokens
    tools = payload.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise TranslationError("tools: expected an array", "tools")
        if tools:
            chat["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(tools)]
    if payload.get("tool_choice") is not None:
        _tool_choice(payload["tool_choice"], chat)
    stops = payload.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise TranslationError("stop_sequences: expected an array of strings", "stop_sequences")
        if stops:
            chat["stop"] = stops
    for key in ("temperature", "top_p", "top_k"):
        if payload.get(key) is not None:
            chat[key] = payload[key]
    metadata = payload.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    effort = _thinking_effort(payload.get("thinking"))
    output_config = payload.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, Mapping):
            raise TranslationError("output_config: expected an object", "output_config")
        if output_config.get("effort") is not None:
            effort = output_config["effort"]
        form = output_config.get("format")
        if form is not None:
            if not isinstance(form, Mapping) or form.get("type") != "json_schema":
                raise TranslationError(
                    "output_config.format: only json_schema formats can be served",
                    "output_config.format",
                )
            chat["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": form.get("schema"), "strict": True},
            }
    if effort is not None:
        chat["reasoning_effort"] = effort
    if payload.get("stream") is True and not counting:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            if not isinstance(block, Mapping) or block.get("type") != "text":
                raise TranslationError("system: only text blocks are supported", f"system.{i}")
            texts.append(_text_of(block, f"system.{i}"))
        return "\n\n".join(texts)
    raise TranslationError("system: expected a string or an array of text blocks", "system")


def _text_of(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise TranslationError(f"{where}.text: Field required (a string)", f"{where}.text")
    return text


def _message(message: Any, where: str) -> list[dict[str, Any]]:
    """One Messages turn as chat messages (a user turn with tool results becomes several)."""
    if not isinstance(message, Mapping):
        raise TranslationError(f"{where}: expected an object", where)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise TranslationError(f"{where}.role: expected 'user' or 'assistant'", f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise TranslationError(
            f"{where}.content: expected a string or an array", f"{where}.content"
        )
    if role == "assistant":
        return [_assistant(content, f"{where}.content")]
    return _user(content, f"{where}.content")


def _assistant(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at = f"{where}.{i}"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(_text_of(block, at))
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise TranslationError(f"{at}: tool_use needs an id and a name", at)
            arguments = orjson.dumps(block.get("input", {})).decode()
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # chat upstreams do not take their reasoning back
        else:
            raise _unsupported_block(kind, at)
    said: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        said["tool_calls"] = calls
    elif said["content"] is None:
        said["content"] = ""
    return said


def _user(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    moved_images: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at = f"{where}.{i}"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "tool_result":
            text, images = _tool_result(block, at)
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str):
                raise TranslationError(f"{at}.tool_use_id: Field required", f"{at}.tool_use_id")
            tool_messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            moved_images.extend(images)
        else:
            raise _unsupported_block(kind, at)
    parts = moved_images + parts
    if not parts:
        return tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tool_messages, {"role": "user", "content": parts[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": parts}]


def _tool_result(block: Mapping[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise TranslationError(
            f"{where}.content: expected a string or an array", f"{where}.content"
        )
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        at = f"{where}.content.{i}"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(_text_of(part, at))
        elif kind == "image":
            images.append(_image(part, at))
        else:
            raise _unsupported_block(kind, at)
    return "\n".join(texts), images


def _image(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind == "base64" and isinstance(source, Mapping):
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise TranslationError(
                f"{where}.source: media_type and data required", f"{where}.source"
            )
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(source, Mapping) and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise TranslationError(
        f"{where}.source: image source {kind!r} cannot be served by this router "
        "(use base64 or url)",
        f"{where}.source",
    )


def _unsupported_block(kind: Any, where: str) -> TranslationError:
    if kind is None:
        return TranslationError(f"{where}: expected a content block with a type", where)
    return TranslationError(
        f"{where}: content blocks of type {kind!r} cannot be served by this router", where
    )


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping):
        raise TranslationError(f"{where}: expected an object", where)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise TranslationError(
            f"{where}: tools of type {kind!r} (server or Anthropic-defined tools) cannot be "
            "served by this router; define it as a custom tool with an input_schema",
            where,
        )
    name = tool.get("name")
    if not isinstance(name, str):
        raise TranslationError(f"{where}.name: Field required", f"{where}.name")
    schema = tool.get("input_schema")
    if not isinstance(schema, Mapping):
        raise TranslationError(f"{where}.input_schema: Field required", f"{where}.input_schema")
    function: dict[str, Any] = {"name": name, "parameters": schema}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice, Mapping) and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise TranslationError(
            "tool_choice: expected auto, any, tool (with a name) or none", "tool_choice"
        )
    if (
        isinstance(choice, Mapping)
        and choice.get("disable_parallel_tool_use") is True
        and kind != "none"
    ):
        chat["parallel_tool_calls"] = False


def _thinking_effort(thinking: Any) -> str | None:
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind in ("disabled", "adaptive"):
        return None
    if kind == "enabled" and isinstance(thinking, Mapping):
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise TranslationError(
                "thinking.budget_tokens: Field required", "thinking.budget_tokens"
            )
        if budget < _THINKING_LOW:
            return "low"
        return "medium" if budget < _THINKING_MEDIUM else "high"
    raise TranslationError(
        f"thinking: type {kind!r} cannot be served by this router "
        "(use enabled, disabled or adaptive)",
        "thinking.type",
    )


# --- answers -----------------------------------------------------------------

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _stop(finish: Any, has_tools: bool, refused: bool, matched: Any) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for a chat finish_reason."""
    reason = _STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if reason == "end_turn":
        if has_tools:
            return "tool_use", None
        if refused:
            return "refusal", None
        if isinstance(matched, str) and matched:  # vLLM names the stop string that matched
            return "stop_sequence", matched
    return reason, None


def _usage(usage: Any, fallback_input: int = 0) -> dict[str, int]:
    counts = chat_usage(usage, fallback_input)
    return {
        "input_tokens": counts.prompt - counts.cached,
        "output_tokens": counts.completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": counts.cached,
    }


def _input_of(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def from_chat(answer: Mapping[str, Any], model: str) -> dict[str, Any]:
    """A chat completion as a Messages answer (``model`` is the name the client asked for)."""
    choices = answer.get("choices")
    choice: Mapping[str, Any] = choices[0] if isinstance(choices, list) and choices else {}
    said = choice.get("message")
    said = said if isinstance(said, Mapping) else {}
    content: list[dict[str, Any]] = []
    reasoning = reasoning_of(said)
    if reasoning is not None:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = said.get("content")
    if isinstance(text, list):  # a few upstreams answer with content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, Mapping))
    refusal = said.get("refusal")
    said_text = (text if isinstance(text, str) else "") + (
        refusal if isinstance(refusal, str) else ""
    )
    if said_text:  # a refusal is text in Messages (with stop_reason "refusal")
        content.append({"type": "text", "text": said_text})
    for call_id, function in tool_calls_of(said):
        content.append(
            {
                "type": "tool_use",
                "id": call_id or _new_id("toolu"),
                "name": str(function.get("name") or ""),
                "input": _input_of(function.get("arguments")),
            }
        )
    has_tools = any(block["type"] == "tool_use" for block in content)
    refused = isinstance(refusal, str) and bool(refusal)
    reason, sequence = _stop(
        choice.get("finish_reason"), has_tools, refused, choice.get("stop_reason")
    )
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": _usage(answer.get("usage")),
    }


# --- errors ------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_KNOWN_TYPES = frozenset(_ERROR_TYPES.values()) | {"api_error"}
_OPENAI_TYPES = {
    "server_error": "api_error",
    "rate_limit_exceeded": "rate_limit_error",
    "insufficient_quota": "rate_limit_error",
    "invalid_api_key": "authentication_error",
}


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    known = _ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if status < 500 else "api_error"


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_body(status: int, message: str) -> bytes:
    """An Anthropic-shaped error body for a status: ``{"type": "error", "error": {...}}``."""
    return orjson.dumps(_error(error_type(status), message))


def from_openai_error(status: int, body: bytes) -> bytes:
    """An upstream's OpenAI-shaped error body in Anthropic's shape (the status decides the type)."""
    message = ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        message = error["message"]
    elif isinstance(error, str):
        message = error
    elif isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        message = parsed["message"]
    if not message:
        message = f"upstream answered {status}"
    return error_body(status, message)


# --- streams -----------------------------------------------------------------


def _event(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass(slots=True)
class _ToolCall:
    id: str | None
    name: str | None
    pending: list[str] = field(default_factory=list)  # arguments before the block could start
    block: int | None = None  # its content block index once started


class StreamTranslator(ChatStreamReader):
    """Chat completion chunks in, Anthropic Messages SSE events out.

    ``feed(chunk)`` for each parsed ``data:`` payload (``[DONE]`` excluded),
    then ``finish()`` once the chat stream ended cleanly, or ``error(...)``
    when it failed; each returns the bytes to send (possibly none). One
    content block is open at a time, like Anthropic's own streams: a block is
    stopped before the next starts and at the end, and a stream has exactly
    one ``message_start`` and, unless it failed, one ``message_stop``. After
    ``finish()`` or ``error()`` every call returns ``b""``.
    """

    def __init__(self, model: str, *, input_tokens: int = 0) -> None:
        super().__init__()
        self.model = model
        self.input_tokens = input_tokens
        self._started = False
        self._blocks = 0  # content blocks started so far
        self._open: str | None = None  # "text", "thinking" or "tool:<index>"
        self._tools: dict[int, _ToolCall] = {}
        self._matched: Any = None
        self._refused = False

    def _failed(self, error: Any) -> bytes:
        message = error.get("message") if isinstance(error, Mapping) else error
        kind = error.get("type") if isinstance(error, Mapping) else None
        return self.error(str(message or "upstream error"), str(kind or "api_error"))

    def _finished(self, choice: Mapping[str, Any]) -> None:
        self._matched = choice.get("stop_reason")

    def finish(self) -> bytes:
        """The end of a clean chat stream: open blocks stopped, message_delta, message_stop."""
        if self.ended:
            return b""
        out = bytearray(self._start())
        out += self._close()
        for index in sorted(self._tools):  # calls whose name never came
            call = self._tools[index]
            if call.block is None:
                call.name = call.name or ""
                out += self._start_tool(index, call)
                out += self._close()
        has_tools = bool(self._tools)
        reason, sequence = _stop(self._finish, has_tools, self._refused, self._matched)
        usage = _usage(self._usage, self.input_tokens)
        if self._usage is None:
            usage = {"output_tokens": 0}
        out += _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": usage,
            },
        )
        out += _event("message_stop", {"type": "message_stop"})
        self.ended = True
        return bytes(out)

    def error(self, message: str, kind: str = "api_error") -> bytes:
        """An ``error`` event ending the stream, after stopping the open block.

        No ``message_delta`` or ``message_stop`` follows (Anthropic sends none
        after an error). ``kind`` is an Anthropic error type; OpenAI's names
        (``server_error``, ...) are mapped, anything unknown is ``api_error``.
        """
        if self.ended:
            return b""
        out = self._close()
        self.ended = True
        kind = _OPENAI_TYPES.get(kind, kind)
        if kind not in _KNOWN_TYPES:
            kind = "api_error"
        return out + _event("error", _error(kind, message))

    # --- internals ---

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": _new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _delta(self, delta: Mapping[str, Any]) -> bytes:
        out = bytearray()
        reasoning = reasoning_of(delta)
        if reasoning is not None:
            out += self._text_block("thinking", {"type": "thinking_delta", "thinking": reasoning})
        text = delta.get("content")
        if isinstance(text, str) and text:
            out += self._text_block("text", {"type": "text_delta", "text": text})
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            out += self._text_block("text", {"type": "text_delta", "text": refusal})
        out += self._tool_deltas(delta)
        return bytes(out)

    def _text_block(self, kind: str, delta: dict[str, Any]) -> bytes:
        out = bytearray()
        if self._open != kind:
            out += self._close()
            block: dict[str, Any] = {"type": "text", "text": ""}
            if kind == "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
            out += self._open_block(kind, block)
        out += _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._blocks - 1, "delta": delta},
        )
        return bytes(out)

    def _tool_delta(self, position: int, call: Mapping[str, Any]) -> bytes:
        index, call_id, name, arguments = tool_delta(position, call)
        known = self._tools.get(index)
        if known is None:
            known = self._tools[index] = _ToolCall(id=call_id, name=name)
        elif known.name is None and name is not None:
            known.name = name
        if known.block is None:
            known.pending.append(arguments)
            return self._start_tool(index, known) if known.name is not None else b""
        if self._open != f"tool:{index}":
            return self.error("the upstream interleaved the arguments of two tool calls")
        if not arguments:
            return b""
        return self._json_delta(known.block, arguments)

    def _start_tool(self, index: int, call: _ToolCall) -> bytes:
        out = bytearray(self._close())
        block = {
            "type": "tool_use",
            "id": call.id or _new_id("toolu"),
            "name": call.name or "",
            "input": {},
        }
        out += self._open_block(f"tool:{index}", block)
        call.block = self._blocks - 1
        pending = "".join(call.pending)
        call.pending.clear()
        if pending:
            out += self._json_delta(call.block, pending)
        return bytes(out)

    def _json_delta(self, block: int, partial: str) -> bytes:
        return _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": block,
                "delta": {"type": "input_json_delta", "partial_json": partial},
            },
        )

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        self._open = kind
        self._blocks += 1
        return _event(
            "content_block_start",
            {"type": "content_block_start", "index": self._blocks - 1, "content_block": block},
        )

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _event(
            "content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1}
        )
