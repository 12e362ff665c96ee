"""OpenAI's Responses API (``POST /v1/responses``) on top of chat completions, statelessly.

Newer OpenAI clients (the Agents SDK, Codex CLI, ``client.responses.create``)
speak the Responses API; most upstreams only chat completions. This module
maps one onto the other and back, without I/O:

* :func:`to_chat` — a Responses request as a chat request (or
  :class:`~modelroute.router.adapters.TranslationError`, a 400 in OpenAI's
  shape, which is the Responses API's own);
* :func:`from_chat` — a chat completion as a Response object;
* :class:`StreamTranslator` — chat chunks in, typed Responses SSE events out.

How things map:

* ``instructions`` → the first message, role ``system``; ``input`` as a string
  → one user message; as items: messages (``input_text``, ``input_image``,
  ``input_file`` with inline ``file_data``; ``output_text`` in assistant
  turns), ``function_call`` items → an assistant message's ``tool_calls``
  (consecutive calls merge into one message, with the assistant text before
  them), ``function_call_output`` → a ``tool`` message;
* ``tools`` (function tools, Responses' flat shape) → chat's nested shape;
  ``tool_choice`` auto/none/required/{function} likewise; ``parallel_tool_calls``;
* ``max_output_tokens`` → ``max_tokens``; ``temperature``, ``top_p``, ``user``;
  ``safety_identifier`` → ``user`` when no ``user`` is given;
* ``text.format`` json_schema/json_object → ``response_format``;
  ``text.verbosity`` → ``verbosity``; ``reasoning.effort`` → ``reasoning_effort``;
* ``stream`` → ``stream`` with ``stream_options.include_usage``.

Answers: ``reasoning_content`` (or ``reasoning``) → a ``reasoning`` item with
its text as ``reasoning_text`` content (as OpenAI serves open-weight models;
there is no summary), the text → a ``message`` item with ``output_text``
(a refusal → a ``refusal`` part), tool calls → ``function_call`` items;
finish reason length → ``status: incomplete`` with
``incomplete_details.reason: max_output_tokens`` (content_filter →
``content_filter``), else ``completed``; usage input/output tokens with
cached and reasoning tokens in their details. Given the request,
:func:`from_chat` echoes its settings (tools, tool_choice, instructions,
temperature, ...) in the Response as OpenAI does.

Limits (what a Responses client should know):

* Stateless: nothing is stored (``store`` is ignored), so
  ``previous_response_id``, ``conversation``, ``background``, ``prompt``
  (stored prompt templates) and ``item_reference`` items are refused with a
  400; ``GET``/``DELETE /v1/responses/{id}`` work only on targets that serve
  the Responses API natively. Clients that resend the whole conversation
  (``store: false``, as Codex does) work.
* Refused with a 400 naming the field: built-in tools (web search, file
  search, code interpreter, computer use, image generation, MCP, shell,
  apply_patch, custom grammar tools) and tool_choice values that name them,
  ``allowed_tools`` tool choices, their call items in ``input``, files and
  images by ``file_id`` or ``file_url`` (they live in the client's OpenAI
  account), ``truncation: auto``, ``top_logprobs``, ``include`` values other
  than ``reasoning.encrypted_content``, ``context_management``, and any
  field the Responses API does not define.
* Dropped, as hints that change no answer: ``store``, ``metadata`` (echoed
  back, not sent upstream), ``prompt_cache_key`` and the other prompt-cache
  options, ``service_tier``, ``max_tool_calls`` (built-in tools only),
  ``stream_options``, ``reasoning.summary``, ``include:
  ["reasoning.encrypted_content"]`` (answers carry reasoning as plain text,
  with no ``encrypted_content``), ``status``/``id`` on input items.
* Dropped because chat upstreams do not take them back: ``reasoning`` items
  in ``input``.
* ``developer`` messages go upstream as ``system`` (what every chat upstream
  understands, and what OpenAI does with ``system`` for reasoning models).
* Images in a ``function_call_output`` move to a user message right after the
  tool messages: chat tool messages carry text only.
* ``max_output_tokens`` goes upstream as ``max_tokens``; OpenAI's reasoning
  models want ``max_completion_tokens``, a per-target rename for the proxy.
* A stream ends with ``response.completed``, or ``response.incomplete`` when
  the answer was cut short, or ``response.failed`` when the upstream failed
  (with what was produced so far). Usage is zero unless the upstream reports
  it (the translated request asks for it).
* A stream whose upstream interleaves the arguments of two tool calls (no
  known provider does) ends with ``response.failed``.
"""

from __future__ import annotations

import secrets
import time
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

__all__ = ["StreamTranslator", "from_chat", "response_object", "to_chat"]

# --- requests ----------------------------------------------------------------

_TRANSLATED = {
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "user",
    "safety_identifier",
    "text",
    "reasoning",
    "stream",
    "include",
    "truncation",
    "top_logprobs",
}
_DROPPED = {
    "store",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "service_tier",
    "max_tool_calls",
    "stream_options",
}
_STATEFUL = {
    "previous_response_id": "previous_response_id needs the provider's stored responses",
    "conversation": "conversations are stored provider-side",
    "background": "background responses are stored provider-side",
    "prompt": "stored prompt templates live in the client's OpenAI account",
    "background_options": "background responses are stored provider-side",
    "context_management": "context management is done provider-side",
}
_SERVED_INCLUDES = {"reasoning.encrypted_content"}


def to_chat(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses request as a chat completions request; TranslationError if it cannot be."""
    for key, value in payload.items():
        if key in _STATEFUL:
            if value is None or value is False:
                continue
            raise TranslationError(
                f"{_STATEFUL[key]}; this router serves the Responses API statelessly.", key
            )
        if key not in _TRANSLATED and key not in _DROPPED:
            raise TranslationError(f"Unknown parameter: '{key}'.", key)
    chat: dict[str, Any] = {}
    if "model" in payload:
        chat["model"] = payload["model"]
    messages: list[dict[str, Any]] = []
    instructions = payload.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise TranslationError("Invalid 'instructions': expected a string.", "instructions")
    given = payload.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        messages.extend(_items(given))
    else:
        raise TranslationError(
            "Missing required parameter: 'input' (a string or an array of items).", "input"
        )
    chat["messages"] = messages

    tools = payload.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise TranslationError("Invalid 'tools': expected an array.", "tools")
        if tools:
            chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    if payload.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(payload["tool_choice"])
    if isinstance(payload.get("parallel_tool_calls"), bool) and tools:
        chat["parallel_tool_calls"] = payload["parallel_tool_calls"]
    limit = payload.get("max_output_tokens")
    if limit is not None:
        chat["max_tokens"] = limit
    for key in ("temperature", "top_p", "user"):
        if payload.get(key) is not None:
            chat[key] = payload[key]
    if "user" not in chat and isinstance(payload.get("safety_identifier"), str):
        chat["user"] = payload["safety_identifier"]
    _text(payload.get("text"), chat)
    reasoning = payload.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    include = payload.get("include")
    for i, value in enumerate(include if isinstance(include, list) else []):
        if value not in _SERVED_INCLUDES:
            raise TranslationError(
                f"include value {value!r} cannot be served by this router.", f"include[{i}]"
            )
    if payload.get("truncation") not in (None, "disabled"):
        raise TranslationError(
            "truncation 'auto' cannot be served by this router (it does not drop input).",
            "truncation",
        )
    if payload.get("top_logprobs"):
        raise TranslationError("top_logprobs cannot be served by this router.", "top_logprobs")
    if payload.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _items(items: list[Any]) -> list[dict[str, Any]]:
    """Input items as chat messages, merging an assistant turn's text and tool calls."""
    messages: list[dict[str, Any]] = []
    moved_images: list[dict[str, Any]] = []  # from tool outputs, for the next user message

    def flush_images() -> None:
        if moved_images:
            messages.append({"role": "user", "content": list(moved_images)})
            moved_images.clear()

    for i, item in enumerate(items):
        at = f"input[{i}]"
        if not isinstance(item, Mapping):
            raise TranslationError(f"Invalid '{at}': expected an object.", at)
        kind = item.get("type", "message")
        if kind != "function_call_output":
            flush_images()
        if kind == "message":
            messages.append(_message(item, at))
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise TranslationError(f"Invalid '{at}': call_id and name are required.", at)
            arguments = item.get("arguments")
            call = {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments if isinstance(arguments, str) else "{}",
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise TranslationError(f"Missing required parameter: '{at}.call_id'.", at)
            text, images = _tool_output(item.get("output"), f"{at}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            moved_images.extend(images)
        elif kind == "reasoning":
            continue  # chat upstreams do not take their reasoning back
        elif kind == "item_reference":
            raise TranslationError(
                "item_reference needs the provider's stored items; this router serves the "
                "Responses API statelessly.",
                at,
            )
        else:
            raise TranslationError(
                f"Input items of type {kind!r} cannot be served by this router.", at
            )
    flush_images()
    return messages


def _message(item: Mapping[str, Any], at: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise TranslationError(
            f"Invalid '{at}.role': expected user, assistant, system or developer.", f"{at}.role"
        )
    content = item.get("content")
    chat_role = "system" if role == "developer" else role
    if isinstance(content, str):
        return {"role": chat_role, "content": content}
    if not isinstance(content, list):
        raise TranslationError(
            f"Invalid '{at}.content': expected a string or an array.", f"{at}.content"
        )
    parts = [_part(part, f"{at}.content[{j}]") for j, part in enumerate(content)]
    if role == "assistant" or role in ("system", "developer"):
        texts = []
        for j, part in enumerate(parts):
            if part["type"] != "text":
                raise TranslationError(
                    f"Invalid '{at}.content[{j}]': {role} messages carry text only.",
                    f"{at}.content[{j}]",
                )
            texts.append(part["text"])
        return {
            "role": chat_role,
            "content": "".join(texts) if role == "assistant" else "\n\n".join(texts),
        }
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": "user", "content": parts[0]["text"]}
    return {"role": "user", "content": parts}


def _part(part: Any, at: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if not isinstance(part, Mapping):
        raise TranslationError(f"Invalid '{at}': expected an object.", at)
    if kind in ("input_text", "output_text", "text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise TranslationError(f"Missing required parameter: '{at}.text'.", f"{at}.text")
        return {"type": "text", "text": text}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise TranslationError(
                f"Invalid '{at}': images by file_id cannot be served by this router "
                "(send image_url, a URL or a data: URL).",
                at,
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise TranslationError(
                f"Invalid '{at}': files by file_id or file_url cannot be served by this router "
                "(send file_data).",
                at,
            )
        file: dict[str, Any] = {"file_data": data}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise TranslationError(f"Content parts of type {kind!r} cannot be served by this router.", at)


def _tool_output(output: Any, at: str) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(output, str):
        return output, []
    if not isinstance(output, list):
        raise TranslationError(f"Invalid '{at}': expected a string or an array.", at)
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for j, part in enumerate(output):
        converted = _part(part, f"{at}[{j}]")
        if converted["type"] == "text":
            texts.append(converted["text"])
        elif converted["type"] == "image_url":
            images.append(converted)
        else:
            raise TranslationError(
                f"Invalid '{at}[{j}]': files in a function call output cannot be served by "
                "this router.",
                f"{at}[{j}]",
            )
    return "\n".join(texts), images


def _tool(tool: Any, at: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping):
        raise TranslationError(f"Invalid '{at}': expected an object.", at)
    kind = tool.get("type")
    if kind != "function":
        raise TranslationError(
            f"Tools of type {kind!r} (built-in tools) cannot be served by this router; "
            "only function tools can.",
            at,
        )
    name = tool.get("name")
    if not isinstance(name, str):
        raise TranslationError(f"Missing required parameter: '{at}.name'.", f"{at}.name")
    function: dict[str, Any] = {"name": name}
    for key in ("description", "parameters"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str):
            return {"type": "function", "function": {"name": name}}
    kind = choice.get("type") if isinstance(choice, Mapping) else choice
    raise TranslationError(
        f"tool_choice {kind!r} cannot be served by this router "
        "(use auto, none, required or a function).",
        "tool_choice",
    )


def _text(text: Any, chat: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, Mapping):
        raise TranslationError("Invalid 'text': expected an object.", "text")
    form = text.get("format")
    kind = form.get("type") if isinstance(form, Mapping) else None
    if isinstance(form, Mapping) and kind == "json_schema":
        schema: dict[str, Any] = {"name": form.get("name", "output"), "schema": form.get("schema")}
        for key in ("description", "strict"):
            if form.get(key) is not None:
                schema[key] = form[key]
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif form is not None and kind != "text":
        raise TranslationError(
            f"text.format of type {kind!r} cannot be served by this router.", "text.format"
        )
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]


# --- answers -----------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _usage(usage: Any, fallback_input: int = 0) -> dict[str, Any]:
    counts = chat_usage(usage, fallback_input)
    return {
        "input_tokens": counts.prompt,
        "input_tokens_details": {"cached_tokens": counts.cached, "cache_write_tokens": 0},
        "output_tokens": counts.completion,
        "output_tokens_details": {"reasoning_tokens": counts.reasoning},
        "total_tokens": counts.prompt + counts.completion,
    }


def _echo_tools(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    tools = request.get("tools")
    echoed = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, Mapping):
            echoed.append(
                {
                    "type": "function",
                    "name": tool.get("name"),
                    "description": tool.get("description"),
                    "parameters": tool.get("parameters"),
                    "strict": tool.get("strict"),
                }
            )
    return echoed


def response_object(
    response_id: str,
    model: str,
    created_at: float,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    request: Mapping[str, Any] | None = None,
    *,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response object, echoing the request's settings as OpenAI does."""
    asked = request if request is not None else {}
    text = asked.get("text")
    reasoning = asked.get("reasoning")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete is not None else None,
        "instructions": asked.get("instructions"),
        "max_output_tokens": asked.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": asked.get("parallel_tool_calls") is not False,
        "previous_response_id": asked.get("previous_response_id"),
        "reasoning": {
            "effort": reasoning.get("effort") if isinstance(reasoning, Mapping) else None,
            "summary": reasoning.get("summary") if isinstance(reasoning, Mapping) else None,
        },
        "store": asked.get("store") is not False,
        "temperature": asked.get("temperature", 1.0),
        "text": text if isinstance(text, Mapping) else {"format": {"type": "text"}},
        "tool_choice": asked.get("tool_choice", "auto"),
        "tools": _echo_tools(asked),
        "top_p": asked.get("top_p", 1.0),
        "truncation": asked.get("truncation") or "disabled",
        "usage": usage,
        "user": asked.get("user"),
        "metadata": asked.get("metadata") or {},
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}] if text else [],
        "status": status,
    }


def _text_part(kind: str, text: str) -> dict[str, Any]:
    if kind == "refusal":
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _function_call(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def from_chat(
    answer: Mapping[str, Any], model: str, *, request: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A chat completion as a Response (``model`` is the name the client asked for).

    ``request`` is the client's Responses request, whose settings the Response echoes.
    """
    choices = answer.get("choices")
    choice: Mapping[str, Any] = choices[0] if isinstance(choices, list) and choices else {}
    said = choice.get("message")
    said = said if isinstance(said, Mapping) else {}
    incomplete = _INCOMPLETE.get(str(choice.get("finish_reason")))
    item_status = "incomplete" if incomplete else "completed"
    output: list[dict[str, Any]] = []
    reasoning = reasoning_of(said)
    if reasoning is not None:
        output.append(_reasoning_item(_new_id("rs"), reasoning, item_status))
    text = said.get("content")
    if isinstance(text, list):  # a few upstreams answer with content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, Mapping))
    parts = []
    if isinstance(text, str) and text:
        parts.append(_text_part("output_text", text))
    refusal = said.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(_text_part("refusal", refusal))
    if parts:
        output.append(
            {
                "id": _new_id("msg"),
                "type": "message",
                "role": "assistant",
                "status": item_status,
                "content": parts,
            }
        )
    for call_id, function in tool_calls_of(said):
        arguments = function.get("arguments")
        output.append(
            _function_call(
                _new_id("fc"),
                call_id or _new_id("call"),
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "",
                item_status,
            )
        )
    created = answer.get("created")
    return response_object(
        _new_id("resp"),
        model,
        created if isinstance(created, int | float) else int(time.time()),
        "incomplete" if incomplete else "completed",
        output,
        _usage(answer.get("usage")),
        request,
        incomplete=incomplete,
    )


# --- streams -----------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """One output item being streamed."""

    kind: str  # "reasoning", "message" or "function_call"
    id: str
    index: int  # output_index
    parts: list[dict[str, Any]] = field(default_factory=list)  # closed content parts
    part: str | None = None  # the open part's kind: "output_text", "refusal", "reasoning_text"
    text: list[str] = field(default_factory=list)  # the open part's text so far
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    done: dict[str, Any] | None = None  # the item as output_item.done sent it


@dataclass(slots=True)
class _ToolCall:
    call_id: str | None
    name: str | None
    pending: list[str] = field(default_factory=list)  # arguments before the item could start
    item: _Item | None = None


class StreamTranslator(ChatStreamReader):
    """Chat completion chunks in, Responses SSE events out.

    ``feed(chunk)`` for each parsed ``data:`` payload (``[DONE]`` excluded),
    then ``finish()`` once the chat stream ended cleanly, or ``error(...)``
    when it failed; each returns the bytes to send (possibly none). Events
    carry ``sequence_number`` from 0; one output item is open at a time, and
    each is closed (``output_item.done``) before the next is added. After
    ``finish()`` or ``error()`` every call returns ``b""``. ``response`` is the
    final Response object once the stream has ended (for a sim that stores it).
    """

    def __init__(
        self, model: str, *, request: Mapping[str, Any] | None = None, input_tokens: int = 0
    ) -> None:
        super().__init__()
        self.model = model
        self.request = request
        self.input_tokens = input_tokens
        self.response: dict[str, Any] | None = None
        self._id = _new_id("resp")
        self._created = int(time.time())
        self._sequence = 0
        self._started = False
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._tools: dict[int, _ToolCall] = {}

    def _failed(self, error: Any) -> bytes:
        message = error.get("message") if isinstance(error, Mapping) else error
        return self.error(str(message or "upstream error"))

    def finish(self) -> bytes:
        """The end of a clean chat stream: open items done, then completed or incomplete."""
        if self.ended:
            return b""
        out = bytearray(self._start())
        out += self._close()
        for call in self._tools.values():  # calls whose name never came
            if call.item is None:
                call.name = call.name or ""
                out += self._start_tool(call)
                out += self._close()
        incomplete = _INCOMPLETE.get(str(self._finish))
        status = "incomplete" if incomplete else "completed"
        self.response = self._response(status, _usage(self._usage, self.input_tokens), incomplete)
        out += self._event(f"response.{status}", {"response": self.response})
        self.ended = True
        return bytes(out)

    def error(self, message: str, code: str = "server_error") -> bytes:
        """``response.failed``, with what was produced so far (after ``response.created``
        if nothing was sent yet, so the SDKs' stream helpers accept it).

        ``code`` is one of the Responses error codes (``server_error``,
        ``rate_limit_exceeded``, ...).
        """
        if self.ended:
            return b""
        out = self._start()
        self.ended = True
        if self._open is not None:  # what was produced stays in the failed response
            self._open.done = self._item_body(self._open, "incomplete")
            self._open = None
        self.response = self._response(
            "failed", None, None, error={"code": code, "message": message}
        )
        return out + self._event("response.failed", {"response": self.response})

    # --- internals ---

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _response(
        self,
        status: str,
        usage: dict[str, Any] | None,
        incomplete: str | None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        output = [item.done for item in self._items if item.done is not None]
        return response_object(
            self._id,
            self.model,
            self._created,
            status,
            output,
            usage,
            self.request,
            incomplete=incomplete,
            error=error,
        )

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = self._response("in_progress", None, None)
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _delta(self, delta: Mapping[str, Any]) -> bytes:
        out = bytearray()
        reasoning = reasoning_of(delta)
        if reasoning is not None:
            out += self._text_delta("reasoning", "reasoning_text", reasoning)
        text = delta.get("content")
        if isinstance(text, str) and text:
            out += self._text_delta("message", "output_text", text)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out += self._text_delta("message", "refusal", refusal)
        out += self._tool_deltas(delta)
        return bytes(out)

    def _add_item(self, kind: str, prefix: str) -> tuple[_Item, bytes]:
        out = self._close()
        item = _Item(kind=kind, id=_new_id(prefix), index=len(self._items))
        self._items.append(item)
        self._open = item
        return item, out + self._event(
            "response.output_item.added",
            {"output_index": item.index, "item": self._item_body(item, "in_progress")},
        )

    def _text_delta(self, kind: str, part: str, text: str) -> bytes:
        out = bytearray()
        item = self._open
        if item is None or item.kind != kind:
            item, added = self._add_item(kind, "rs" if kind == "reasoning" else "msg")
            out += added
        if item.part != part:
            out += self._close_part(item)
            item.part = part
            empty = {"type": "reasoning_text", "text": ""} if part == "reasoning_text" else None
            out += self._event(
                "response.content_part.added",
                {
                    "item_id": item.id,
                    "output_index": item.index,
                    "content_index": len(item.parts),
                    "part": empty or _text_part(part, ""),
                },
            )
        item.text.append(text)
        where = {"item_id": item.id, "output_index": item.index, "content_index": len(item.parts)}
        if part == "reasoning_text":
            out += self._event("response.reasoning_text.delta", {**where, "delta": text})
        elif part == "refusal":
            out += self._event("response.refusal.delta", {**where, "delta": text})
        else:
            out += self._event(
                "response.output_text.delta", {**where, "delta": text, "logprobs": []}
            )
        return bytes(out)

    def _close_part(self, item: _Item) -> bytes:
        part = item.part
        if part is None:
            return b""
        text = "".join(item.text)
        where = {"item_id": item.id, "output_index": item.index, "content_index": len(item.parts)}
        if part == "reasoning_text":
            closed: dict[str, Any] = {"type": "reasoning_text", "text": text}
            out = self._event("response.reasoning_text.done", {**where, "text": text})
        elif part == "refusal":
            closed = _text_part(part, text)
            out = self._event("response.refusal.done", {**where, "refusal": text})
        else:
            closed = _text_part(part, text)
            out = self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
        out += self._event("response.content_part.done", {**where, "part": closed})
        item.parts.append(closed)
        item.part = None
        item.text = []
        return out

    def _item_body(self, item: _Item, status: str) -> dict[str, Any]:
        if item.kind == "function_call":
            arguments = "".join(item.arguments) if status != "in_progress" else ""
            return _function_call(item.id, item.call_id, item.name, arguments, status)
        parts = list(item.parts)
        if item.part is not None and status != "in_progress":
            parts.append(
                {"type": "reasoning_text", "text": "".join(item.text)}
                if item.part == "reasoning_text"
                else _text_part(item.part, "".join(item.text))
            )
        if item.kind == "reasoning":
            text = "".join(p["text"] for p in parts)
            body = _reasoning_item(item.id, text, status)
            if status == "in_progress":
                body["content"] = []
            return body
        return {
            "id": item.id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": parts if status != "in_progress" else [],
        }

    def _close(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
        status = "incomplete" if _INCOMPLETE.get(str(self._finish)) else "completed"
        out = bytearray()
        if item.kind == "function_call":
            out += self._event(
                "response.function_call_arguments.done",
                {
                    "item_id": item.id,
                    "output_index": item.index,
                    "name": item.name,
                    "arguments": "".join(item.arguments),
                },
            )
        else:
            out += self._close_part(item)
        item.done = self._item_body(item, status)
        out += self._event(
            "response.output_item.done", {"output_index": item.index, "item": item.done}
        )
        return bytes(out)

    def _tool_delta(self, position: int, call: Mapping[str, Any]) -> bytes:
        index, call_id, name, arguments = tool_delta(position, call)
        known = self._tools.get(index)
        if known is None:
            known = self._tools[index] = _ToolCall(call_id=call_id, name=name)
        elif known.name is None and name is not None:
            known.name = name
        if known.item is None:
            known.pending.append(arguments)
            return self._start_tool(known) if known.name is not None else b""
        if self._open is not known.item:
            return self.error("the upstream interleaved the arguments of two tool calls")
        return self._arguments(known.item, arguments)

    def _start_tool(self, call: _ToolCall) -> bytes:
        out = bytearray(self._close())
        item = _Item(kind="function_call", id=_new_id("fc"), index=len(self._items))
        item.call_id = call.call_id or _new_id("call")
        item.name = call.name or ""
        self._items.append(item)
        self._open = item
        call.item = item
        out += self._event(
            "response.output_item.added",
            {"output_index": item.index, "item": self._item_body(item, "in_progress")},
        )
        pending = "".join(call.pending)
        call.pending.clear()
        out += self._arguments(item, pending)
        return bytes(out)

    def _arguments(self, item: _Item, arguments: str) -> bytes:
        if not arguments:
            return b""
        item.arguments.append(arguments)
        return self._event(
            "response.function_call_arguments.delta",
            {"item_id": item.id, "output_index": item.index, "delta": arguments},
        )
