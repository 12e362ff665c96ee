"""The simulator bills like a provider: prompt tokens near a real tokenizer's, max_tokens,
a context window, a prefix cache. Through real HTTP on loopback, like test_sim."""

# ruff: noqa: RUF001  (the samples are Chinese, Japanese and Russian text on purpose)

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

import modelroute
from modelroute.router.sim import SimBehaviour, SimServer, _PrefixCache

ROOT = Path(modelroute.__file__).resolve().parent.parent

# --- requests whose token counts are known -----------------------------------------
#
# REFERENCE holds each request's count by o200k (GPT-4o's tokenizer) under OpenAI's
# published counting rules (3 tokens a message plus 1 for the role, 3 to prime the
# reply, tool definitions as OpenAI renders them), measured once with a tokenizer
# outside this repository. The sim must land within 25% of each.

ENGLISH = (
    "The quarterly report shows that revenue grew by eleven percent compared with the same "
    "period last year, driven mostly by the new subscription tier launched in March. Costs "
    "rose more slowly than revenue, although spending on cloud infrastructure doubled after "
    "the migration to a second region. The board asked the finance team to explain why the "
    "support budget was exceeded for the third quarter in a row, and to propose a plan that "
    "keeps response times under four hours without hiring more staff. Customer churn fell to "
    "its lowest level since the company was founded, which the sales team attributes to the "
    "annual billing discount and to the faster onboarding process introduced in the spring."
)
CODE = '''def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping closed intervals; the result is sorted by start."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


class LRUCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        value = self.items.pop(key, None)
        if value is not None:
            self.items[key] = value
        return value
'''
CHINESE = (
    "人工智能正在改变我们的工作方式。越来越多的公司开始使用大型语言模型来处理客户服务、"
    "撰写文档和分析数据。然而，这些模型的使用成本并不低，尤其是在请求量很大的情况下。"
    "因此，许多团队开始研究如何根据问题的难度选择合适的模型：简单的问题交给便宜的模型，"
    "复杂的问题才交给昂贵的模型。这样既能保证回答的质量，又能显著降低总体费用。"
    "此外，缓存重复的提示前缀也是节省成本的重要手段，因为服务商对缓存命中的输入只收取很低的费用。"
)
JAPANESE = (
    "東京の天気は今週の後半から崩れる見込みです。金曜日の午後には雨が降り始め、"
    "週末は強い風を伴う大雨になるおそれがあります。外出の予定がある方は、"
    "最新の気象情報を確認し、早めに傘や雨具を準備してください。"
    "また、交通機関の遅れや運休が発生する可能性もあるため、時間に余裕を持って行動しましょう。"
)
RUSSIAN = (
    "Команда разработчиков выпустила новую версию маршрутизатора запросов. Теперь он умеет "
    "выбирать модель в зависимости от сложности вопроса, учитывает размер контекстного окна "
    "и не отправляет запрос туда, где он заведомо не поместится. Кроме того, маршрутизатор "
    "старается направлять запросы одного диалога на один и тот же сервер, чтобы кэш префиксов "
    "у провайдера оставался тёплым и стоимость входных токенов снижалась."
)
GERMAN = (
    "Die Bahn hat angekündigt, dass die Strecke zwischen Köln und Frankfurt wegen "
    "Bauarbeiten für drei Wochen gesperrt wird. Fahrgäste müssen mit längeren Fahrzeiten "
    "rechnen, da die Züge über Koblenz umgeleitet werden. Für Pendler werden zusätzliche "
    "Busse eingesetzt, und bereits gekaufte Fahrkarten bleiben gültig. Die Arbeiten sollen "
    "die Zuverlässigkeit der Verbindung in den kommenden Jahren deutlich verbessern."
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_ticket",
            "description": "Open a support ticket on behalf of the user.",
            "parameters": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "One-line summary"},
                    "body": {
                        "type": "string",
                        "description": "Full description with steps to reproduce",
                    },
                    "priority": {
                        "type": "string",
                        "description": "Urgency",
                        "enum": ["low", "normal", "high", "urgent"],
                    },
                },
                "required": ["title", "body"],
            },
        },
    },
]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


EXAMPLES: dict[str, dict[str, Any]] = {
    "greeting": {"messages": user("Hello! How are you today?")},
    "english": {
        "messages": [
            {"role": "system", "content": "You are a concise financial analyst."},
            *user("Summarise:\n\n" + ENGLISH),
        ]
    },
    "code": {
        "messages": user(
            "Review this Python code and point out bugs:\n\n```python\n" + CODE + "```"
        )
    },
    "chinese": {
        "messages": [{"role": "system", "content": "你是一个乐于助人的助手。"}, *user(CHINESE)]
    },
    "japanese": {"messages": user(JAPANESE)},
    "russian": {"messages": user(RUSSIAN)},
    "german": {"messages": user(GERMAN)},
    "multi-turn": {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of Australia?"},
            {"role": "assistant", "content": "The capital of Australia is Canberra."},
            {"role": "user", "content": "Why not Sydney?"},
        ]
    },
    "tools": {
        "messages": user("What's the weather in Berlin? Open a ticket if it is above 30 degrees."),
        "tools": TOOLS,
    },
}
REFERENCE = {
    "greeting": 14,
    "english": 145,
    "code": 211,
    "chinese": 152,
    "japanese": 117,
    "russian": 110,
    "german": 91,
    "multi-turn": 43,
    "tools": 154,
}

# A system prompt of about 2,000 tokens: long enough for the prefix cache (1,024 or more).
POLICY = "\n\n".join(f"Section {i}. {ENGLISH}" for i in range(1, 15))




async def chat(
    http: aiohttp.ClientSession, sim: SimServer, body: dict[str, Any], status: int = 200
) -> Any:
    async with http.post(f"{sim.url}/chat/completions", json={"model": "m", **body}) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def events(response: aiohttp.ClientResponse) -> list[Any]:
    found: list[Any] = []
    async for line in response.content:
        if line.startswith(b"data: "):
            data = line[6:].strip()
            found.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return found


def conversation(*turns: str) -> list[dict[str, str]]:
    """The policy as the system prompt, then user and assistant turns alternating."""
    messages = [{"role": "system", "content": POLICY}]
    for i, turn in enumerate(turns):
        messages.append({"role": "assistant" if i % 2 else "user", "content": turn})
    return messages


# --- prompt tokens ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXAMPLES))
async def test_prompt_tokens_near_a_real_tokenizer(
    sim: SimServer, http: aiohttp.ClientSession, name: str
) -> None:
    usage = (await chat(http, sim, EXAMPLES[name]))["usage"]
    assert abs(usage["prompt_tokens"] / REFERENCE[name] - 1) <= 0.25, usage["prompt_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_tokens_of_tool_calls_images_and_names_count(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    base = user("Describe it.")
    plain = (await chat(http, sim, {"messages": base}))["usage"]["prompt_tokens"]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 50_000}}
    parts = [{"role": "user", "content": [{"type": "text", "text": "Describe it."}, image]}]
    with_image = (await chat(http, sim, {"messages": parts}))["usage"]["prompt_tokens"]
    assert with_image == plain + 765  # a fixed cost, however long the data URL
    call = {"name": "get_current_weather", "arguments": '{"location": "Berlin"}'}
    agent = [
        *base,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": call}]},
        {"role": "tool", "tool_call_id": "c1", "name": "weather", "content": "31 C, sunny"},
    ]
    with_calls = (await chat(http, sim, {"messages": agent}))["usage"]["prompt_tokens"]
    assert plain + 20 <= with_calls <= plain + 40


async def test_completion_and_embedding_inputs(sim: SimServer, http: aiohttp.ClientSession) -> None:
    body = {"model": "m", "prompt": ["Say hello", [1, 2, 3, 4, 5]]}
    async with http.post(f"{sim.url}/completions", json=body) as r:
        usage = (await r.json())["usage"]
    assert usage["prompt_tokens"] == 2 + 5  # token ids count as themselves
    body = {"model": "e", "input": ["hello", "世界你好", [7, 8, 9]]}
    async with http.post(f"{sim.url}/embeddings", json=body) as r:
        assert (await r.json())["usage"] == {"prompt_tokens": 1 + 3 + 3, "total_tokens": 7}


# --- max_tokens ------------------------------------------------------------------


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_cuts_the_answer(
    sim: SimServer, http: aiohttp.ClientSession, param: str
) -> None:
    body = await chat(http, sim, {"messages": user("Count."), param: 5})
    (choice,) = body["choices"]
    assert choice["message"]["content"] == "tok0 tok1 tok2 tok3 tok4"
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5

    legacy = {"model": "m", "prompt": "Count.", param: 3}
    async with http.post(f"{sim.url}/completions", json=legacy) as r:
        body = await r.json()
    assert body["choices"][0]["text"] == "tok0 tok1 tok2"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


async def test_max_tokens_cuts_the_stream(sim: SimServer, http: aiohttp.ClientSession) -> None:
    body = {
        "model": "m",
        "messages": user("Count."),
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 4,
    }
    async with http.post(f"{sim.url}/chat/completions", json=body) as r:
        chunks = await events(r)
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:-3]]
    assert content == ["tok0", " tok1", " tok2", " tok3"]
    assert chunks[-3]["choices"][0]["finish_reason"] == "length"
    assert chunks[-2]["usage"]["completion_tokens"] == 4
    assert chunks[-1] == "[DONE]"
    assert sim.stats.tokens_sent == 4


async def test_max_tokens_above_the_answer_stops_naturally(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    sim.behaviour.tokens = 6
    body = await chat(http, sim, {"messages": user("Count."), "max_tokens": 6})
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 6
    both = {"messages": user("Count."), "max_tokens": 100, "max_completion_tokens": 2}
    assert (await chat(http, sim, both))["usage"]["completion_tokens"] == 2  # the lower wins


@pytest.mark.parametrize("value", [0, -1, "5", True, 1.5])
async def test_invalid_max_tokens_is_a_400(
    sim: SimServer, http: aiohttp.ClientSession, value: object
) -> None:
    body = await chat(http, sim, {"messages": user("Count."), "max_tokens": value}, 400)
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "max_tokens"


# --- the context window -----------------------------------------------------------


async def test_prompt_beyond_the_window_is_context_length_exceeded(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    messages = user(ENGLISH)
    prompt = (await chat(http, sim, {"messages": messages}))["usage"]["prompt_tokens"]
    sim.behaviour.context_window = prompt - 1
    body = await chat(http, sim, {"messages": messages}, 400)
    assert body == {
        "error": {
            "message": f"This model's maximum context length is {prompt - 1} tokens. However, "
            f"your messages resulted in {prompt} tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    assert (sim.stats.completed, sim.stats.errors, sim.stats.prompt_tokens) == (2, 1, prompt)


async def test_max_tokens_counts_against_the_window(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    messages = user(ENGLISH)
    prompt = (await chat(http, sim, {"messages": messages}))["usage"]["prompt_tokens"]
    sim.behaviour.context_window = prompt + 100
    assert (await chat(http, sim, {"messages": messages, "max_tokens": 100}))["choices"]
    body = await chat(http, sim, {"messages": messages, "max_tokens": 101, "stream": True}, 400)
    error = body["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    requested = f"you requested {prompt + 101} tokens ({prompt} in the messages, 101 in the"
    assert requested in error["message"]

    legacy = {"model": "m", "prompt": "x" * 4000, "max_tokens": 10}
    async with http.post(f"{sim.url}/completions", json=legacy) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "prompt")


async def test_without_max_tokens_the_window_cuts_the_answer(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    messages = user(ENGLISH)
    prompt = (await chat(http, sim, {"messages": messages}))["usage"]["prompt_tokens"]
    sim.behaviour.context_window = prompt + 3
    body = await chat(http, sim, {"messages": messages})
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


# --- the prefix cache --------------------------------------------------------------


async def test_without_a_prefix_cache_usage_has_no_details(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    for _ in range(2):
        usage = (await chat(http, sim, {"messages": conversation("Hi")}))["usage"]
        assert "prompt_tokens_details" not in usage
    assert sim.stats.cached_tokens == 0


@pytest.mark.parametrize("system", [POLICY, CHINESE * 12], ids=["english", "chinese"])
async def test_a_repeated_prompt_is_cached_within_the_ttl(
    sim: SimServer, http: aiohttp.ClientSession, system: str
) -> None:
    sim.behaviour.prefix_cache_ttl = 60
    body = {"messages": [{"role": "system", "content": system}, *user("What changed?")]}
    first = (await chat(http, sim, body))["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    second = (await chat(http, sim, body))["usage"]
    prompt, cached = second["prompt_tokens"], second["prompt_tokens_details"]["cached_tokens"]
    assert prompt == first["prompt_tokens"] >= 1024
    assert cached % 128 == 0
    assert prompt - 128 - 90 < cached <= prompt  # a step of 128, a block of 256 bytes
    assert (sim.stats.prompt_tokens, sim.stats.cached_tokens) == (2 * prompt, cached)


async def test_the_cache_expires_after_the_ttl(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.prefix_cache_ttl = 0.1
    body = {"messages": conversation("What changed?")}
    await chat(http, sim, body)
    await asyncio.sleep(0.2)
    usage = (await chat(http, sim, body))["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


async def test_a_different_prefix_or_model_is_not_cached(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    sim.behaviour.prefix_cache_ttl = 60
    await chat(http, sim, {"messages": conversation("What changed?")})
    other = [{"role": "system", "content": "Be brief. " + POLICY}, *user("What changed?")]
    usage = (await chat(http, sim, {"messages": other}))["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    body = {"model": "another-model", "messages": conversation("What changed?")}
    usage = (await chat(http, sim, body))["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


async def test_short_prompts_are_never_cached(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.prefix_cache_ttl = 60
    body = {"messages": user(ENGLISH * 3)}  # some 500 tokens
    for _ in range(2):
        usage = (await chat(http, sim, body))["usage"]
        assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


async def test_a_growing_conversation_reuses_its_prefix(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    sim.behaviour.prefix_cache_ttl = 60
    system_only = await chat(http, sim, {"messages": conversation()})
    system = system_only["usage"]["prompt_tokens"] - 3  # less the reply priming

    turns = ["Compare these two:\n\n" + ENGLISH + "\n\n" + GERMAN, ENGLISH, "Why?"]
    first = (await chat(http, sim, {"messages": conversation(turns[0])}))["usage"]
    # A new question after the same system prompt: the system prompt is cached.
    assert system - 128 - 90 < first["prompt_tokens_details"]["cached_tokens"] <= system

    second = (await chat(http, sim, {"messages": conversation(*turns)}))["usage"]
    cached = second["prompt_tokens_details"]["cached_tokens"]
    # The whole first turn is a prefix of the second, more than the system prompt.
    assert first["prompt_tokens"] - 128 - 90 < cached <= first["prompt_tokens"]
    assert cached > system and cached % 128 == 0


async def test_streamed_usage_reports_cached_tokens(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    sim.behaviour.update({"prefix_cache_ttl": 60, "tokens": 3})
    body = {
        "model": "m",
        "messages": conversation("What changed?"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    await chat(http, sim, {"messages": conversation("What changed?")})
    async with http.post(f"{sim.url}/chat/completions", json=body) as r:
        chunks = await events(r)
    usage = chunks[-2]["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["prompt_tokens_details"]["cached_tokens"] >= 1024


async def test_reset_forgets_the_cache(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.prefix_cache_ttl = 60
    body = {"messages": conversation("What changed?")}
    await chat(http, sim, body)
    async with http.post(sim.url.removesuffix("/v1") + "/sim/reset") as r:
        assert (await r.json())["cached_tokens"] == 0
    usage = (await chat(http, sim, body))["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_prefix_cache_lives_while_used_and_stays_bounded() -> None:
    cache = _PrefixCache(max_blocks=8)
    block = _PrefixCache.BLOCK
    prompt = bytes(range(256)) * 4  # four blocks
    assert cache.seen("m", prompt, ttl=10, now=0) == 0
    assert cache.seen("m", prompt + b"tail", ttl=10, now=9) == 4 * block
    assert cache.seen("m", prompt, ttl=10, now=18) == 4 * block  # refreshed at 9
    assert cache.seen("m", prompt, ttl=10, now=30) == 0  # unused since 18
    assert cache.seen("m", prompt[:block] + b"x" * block, ttl=10, now=31) == block
    assert len(cache) == 5
    assert cache.seen("other", b"y" * 8 * block, ttl=10, now=32) == 0
    assert len(cache) == 8  # the least recently used went first
    assert cache.seen("m", prompt, ttl=10, now=33) == 0


def test_behaviour_validation_of_the_new_fields() -> None:
    with pytest.raises(ValueError, match="context_window"):
        SimBehaviour(context_window=0)
    with pytest.raises(ValueError, match="prefix_cache_ttl"):
        SimBehaviour(prefix_cache_ttl=-1)
    SimBehaviour(context_window=32_768, prefix_cache_ttl=0)


async def test_cli_flags(http: aiohttp.ClientSession) -> None:
    # As in test_sim: the repo root goes on the path after startup, not via PYTHONPATH.
    def command(*flags: str) -> str:
        return (
            f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from modelroute.cli import main\n"
            f"raise SystemExit(main(['sim', '--port', '0', *{list(flags)!r}]))\n"
        )

    bad = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        command("--context-window", "0"),
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    _, err = await asyncio.wait_for(bad.communicate(), 20)
    assert bad.returncode == 2
    assert b"context_window: must be at least 1" in err

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        command("--context-window", "32768", "--prefix-cache-ttl", "300"),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().split()[-1]
        admin = url.removesuffix("/v1") + "/sim/behaviour"
        async with http.post(admin, json={}) as r:
            behaviour = await r.json()
        assert (behaviour["context_window"], behaviour["prefix_cache_ttl"]) == (32768, 300)
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
