"""What the simulated model says beyond plain text, and how the simulator serves other APIs.

The simulator's chat route answers ``tok0 tok1 ...`` from pre-encoded bytes,
the cheapest answer there is, which is what benchmarks want. Two requests
deserve more, because a real model would answer them differently:

* a forced tool call (``tool_choice: "required"`` or a named function): the
  model calls the tool (the named one, or the first), with arguments made up
  from its JSON schema, and stops with ``finish_reason: "tool_calls"``;
* a ``reasoning_effort``: the model reasons first (``reasoning_content``,
  DeepSeek's field: 2 to 32 tokens by effort, at most half the answer's
  budget) and bills it in ``completion_tokens_details.reasoning_tokens``.

Such an answer is built here as chat completion dicts (:func:`say`,
:func:`chunks`, :func:`completion`) and written by :func:`serve`, which a
natively served API reuses with its adapter (``modelroute.router.adapters``):
the simulator generates a chat answer and translates it, as the router will,
so the native APIs and the chat route always agree on what the model said.
Latency, ``token_delay_ms``, ``die_after_tokens``, the error event before
content and the injected failures apply to every API alike.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from modelroute.router.sim import SimBehaviour, SimServer

__all__ = ["Handler", "Said", "Translator", "answer", "answer_chat", "say", "shaped"]

Handler = Callable[["SimServer", web.BaseRequest, "SimBehaviour"], Awaitable[web.StreamResponse]]
"""A natively served route: the simulator, the request, the behaviour read for it."""

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
MID_STREAM_ERROR = "simulated upstream error mid-stream"
_EFFORT_TOKENS = {"minimal": 2, "low": 4, "medium": 8, "high": 16, "xhigh": 24, "max": 32}


class Translator(Protocol):
    """Chat chunks in, an API's SSE bytes out (the adapters' StreamTranslator)."""

    def feed(self, chunk: Mapping[str, Any]) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, message: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Said:
    """One simulated answer: its reasoning and text as token pieces, its tool calls."""

    reasoning: tuple[str, ...]
    text: tuple[str, ...]
    calls: tuple[tuple[str, str, str], ...]  # (call id, function name, JSON arguments)
    finish: str
    usage: dict[str, Any]

    @property
    def tokens(self) -> int:
        return len(self.reasoning) + len(self.text) + len(self.calls)


def _forced_tool(chat: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The (name, parameters schema) of the tool the request makes the model call, if any."""
    tools = chat.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    functions = [
        t["function"]
        for t in tools
        if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
    ]
    choice = chat.get("tool_choice")
    if choice == "required" and functions:
        return str(functions[0].get("name", "")), functions[0].get("parameters")
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = str(choice["function"].get("name", ""))
        schema = next((f.get("parameters") for f in functions if f.get("name") == name), None)
        return name, schema
    return None


def _reasoning_tokens(chat: Mapping[str, Any], tokens: int) -> int:
    effort = chat.get("reasoning_effort")
    return min(_EFFORT_TOKENS.get(effort, 0), tokens // 2) if isinstance(effort, str) else 0


def _structured(chat: Mapping[str, Any]) -> Any:
    """The JSON value a ``response_format`` asks the answer to be, or None: an example
    of a ``json_schema``'s schema, or an object for ``json_object``."""
    fmt = chat.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_object":
        return {"answer": "sim"}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        value = _example(schema)
        return value if value is not None else {}
    return None


def shaped(chat: Mapping[str, Any]) -> bool:
    """Whether a chat request gets more than the plain answer (a forced tool, reasoning,
    structured output)."""
    return (
        _forced_tool(chat) is not None
        or _reasoning_tokens(chat, 2) > 0
        or _structured(chat) is not None
    )


def _example(schema: Any, depth: int = 0) -> Any:
    """A value that fits a JSON schema, made up the way a model fills in tool arguments."""
    if not isinstance(schema, Mapping) or depth > 5:
        return None
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _example(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), Mapping)):
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {str(k): _example(v, depth + 1) for k, v in properties.items()}
    if kind == "array":
        return [_example(schema.get("items"), depth + 1)]
    return {"string": "sim", "integer": 1, "number": 1.5, "boolean": True}.get(str(kind))


def _pieces(word: str, count: int) -> tuple[str, ...]:
    return tuple(f"{word}{i}" if i == 0 else f" {word}{i}" for i in range(count))


def say(chat: Mapping[str, Any], tokens: int, finish: str, usage: dict[str, Any]) -> Said:
    """What the simulated model answers, within its budget of ``tokens``."""
    think = _reasoning_tokens(chat, tokens)
    usage = dict(usage)
    if think:
        usage["completion_tokens_details"] = {"reasoning_tokens": think}
    forced = _forced_tool(chat)
    structured = _structured(chat) if forced is None else None
    if structured is not None:  # the whole JSON document, in pieces of about a token
        text = orjson.dumps(structured).decode()
        pieces = tuple(text[i : i + 4] for i in range(0, len(text), 4))
        usage["completion_tokens"] = think + len(pieces)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return Said(_pieces("think", think), pieces, (), "stop", usage)
    if forced is None:
        return Said(_pieces("think", think), _pieces("tok", tokens - think), (), finish, usage)
    name, schema = forced
    arguments = orjson.dumps(_example(schema) or {}).decode()
    completion = think + max(1, round(len(arguments) / 4))
    usage["completion_tokens"] = completion
    usage["total_tokens"] = usage["prompt_tokens"] + completion
    call = (f"call_{secrets.token_hex(12)}", name, arguments)
    return Said(_pieces("think", think), (), (call,), "tool_calls", usage)


def _chunk(
    chat_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": chat_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def chunks(
    said: Said, model: str, chat_id: str, *, include_usage: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The answer as chat chunks: the opening (role), the content (one a token), the closing."""
    created = int(time.time())
    opening = [_chunk(chat_id, model, created, {"role": "assistant", "content": ""}, None)]
    content = [
        _chunk(chat_id, model, created, {"reasoning_content": p}, None) for p in said.reasoning
    ]
    content += [_chunk(chat_id, model, created, {"content": p}, None) for p in said.text]
    for index, (call_id, name, arguments) in enumerate(said.calls):
        head = {"index": index, "id": call_id, "type": "function"}
        start = {**head, "function": {"name": name, "arguments": ""}}
        content.append(_chunk(chat_id, model, created, {"tool_calls": [start]}, None))
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            piece = {"index": index, "function": {"arguments": part}}
            content.append(_chunk(chat_id, model, created, {"tool_calls": [piece]}, None))
    closing = [_chunk(chat_id, model, created, {}, said.finish)]
    if include_usage:
        for chunk in (*opening, *content, *closing):
            chunk["usage"] = None  # like OpenAI: null in every chunk but the last
        closing.append(
            {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": said.usage,
            }
        )
    return opening, content, closing


def completion(said: Said, model: str, chat_id: str) -> dict[str, Any]:
    """The answer as a whole chat completion."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(said.text) if said.text or not said.calls else None,
        "refusal": None,
    }
    if said.reasoning:
        message["reasoning_content"] = "".join(said.reasoning)
    if said.calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in said.calls
        ]
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": said.finish}
        ],
        "usage": said.usage,
    }


class ChatEvents:
    """The identity translator: chat chunks out as chat SSE, for the chat route."""

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, message: str) -> bytes:
        error = {"message": message, "type": "server_error", "param": None, "code": None}
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


async def answer(
    sim: SimServer,
    request: web.BaseRequest,
    behaviour: SimBehaviour,
    chat: dict[str, Any],
    *,
    whole: Callable[[dict[str, Any]], dict[str, Any]],
    translator: Callable[[dict[str, Any]], Translator],
    done: Callable[[Translator], None] | None = None,
) -> web.StreamResponse:
    """Answer a translated request: the chat answer, through the API's adapter.

    ``whole`` turns a chat completion into the API's answer; ``translator``
    makes the stream translator, given the answer's usage (an API that
    reports input tokens at the start of a stream knows them); ``done`` sees
    the translator of a stream that ended cleanly.
    """
    pieces, prompt_tokens = sim._chat_prompt(chat)
    budget = await sim._budget(request, behaviour, chat, pieces, prompt_tokens, chat=True)
    if not isinstance(budget, tuple):
        return budget
    said = say(chat, *budget)
    return await serve(sim, request, behaviour, chat, said, whole, translator, done)


async def answer_chat(
    sim: SimServer,
    request: web.BaseRequest,
    behaviour: SimBehaviour,
    chat: dict[str, Any],
    budget: tuple[int, str, dict[str, Any]],
) -> web.StreamResponse:
    """The chat route's answer to a request that :func:`shaped` picks out."""
    said = say(chat, *budget)
    return await serve(sim, request, behaviour, chat, said, lambda c: c, lambda _: ChatEvents())


async def serve(
    sim: SimServer,
    request: web.BaseRequest,
    behaviour: SimBehaviour,
    chat: Mapping[str, Any],
    said: Said,
    whole: Callable[[dict[str, Any]], dict[str, Any]],
    translator: Callable[[dict[str, Any]], Translator],
    done: Callable[[Translator], None] | None = None,
) -> web.StreamResponse:
    """Write an answer whole or as a stream, with the behaviour's faults and pacing."""
    chat_id = f"chatcmpl-sim{next(sim._ids)}"
    model = str(chat["model"])
    if chat.get("stream") is not True:
        if (cut := await sim._wait_whole(request, behaviour, said.tokens)) is not None:
            return cut
        return await sim._json(request, behaviour, whole(completion(said, model, chat_id)))

    options = chat.get("stream_options")
    include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
    opening, content, closing = chunks(said, model, chat_id, include_usage=include_usage)
    events = translator(said.usage)
    response = web.StreamResponse(headers=sim._headers(behaviour, SSE_HEADERS))
    await response.prepare(request)
    stats = sim.stats
    if behaviour.stream_error_before_content:
        start = b"".join(events.feed(chunk) for chunk in opening)
        await response.write(start + events.error(MID_STREAM_ERROR))
        await response.write_eof()
        stats.completed += 1
        stats.errors += 1
        return response

    if behaviour.die_after_tokens is not None:
        content = content[: behaviour.die_after_tokens]
    delay = behaviour.token_delay_ms / 1000
    if delay <= 0:
        await response.write(b"".join(events.feed(chunk) for chunk in (*opening, *content)))
        stats.tokens_sent += len(content)
    else:
        await response.write(b"".join(events.feed(chunk) for chunk in opening))
        for chunk in content:
            await asyncio.sleep(delay)
            await response.write(events.feed(chunk))
            stats.tokens_sent += 1
    if behaviour.die_after_tokens is not None:
        return sim._abort(request)
    await response.write(b"".join(events.feed(chunk) for chunk in closing) + events.finish())
    await response.write_eof()
    stats.completed += 1
    if done is not None:
        done(events)
    return response
