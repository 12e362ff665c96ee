"""The response cache: unit rules and behaviour through HTTP (one router, memory tier).

The Redis tier, across routers and restarts, is in test_shared_state.py.
"""

from __future__ import annotations

import aiohttp
import orjson
from hypothesis import given
from hypothesis import strategies as st

from modelroute.router.cache import (
    MAX_ENTRY_BYTES,
    Entry,
    MemoryCache,
    cache_directives,
    cache_key,
    cacheable,
)
from modelroute.router.replay import Gathered, stream_of
from modelroute.spec.model import Cache
from modelroute.spec.schema import parse_section
from tests.router.conftest import RouterFactory, SimFactory, route_doc

CHAT = {
    "model": "chat-fast",
    "temperature": 0,
    "messages": [{"role": "user", "content": "What is 2+2?"}],
}


def _cache(**raw: object) -> Cache:
    settings, errors = parse_section(Cache, {"enabled": True, **raw}, "cache")
    assert settings is not None, errors
    return settings


def _entry(body: bytes, expires: float = 100.0) -> Entry:
    return Entry(expires, [], body)


def test_lru_bounded_by_entries_bytes_and_ttl() -> None:
    cache = MemoryCache(_cache(ttl="10s", maxEntries=2))
    a, b, c = (cache_key("/x", "t", None, v) for v in (b"a", b"b", b"c"))
    cache.put(a, _entry(b"A", 10))
    cache.put(b, _entry(b"B", 10))
    assert cache.get(a, now=1) is not None  # a is now the most recently used
    cache.put(c, _entry(b"C", 10))
    assert cache.get(b, now=1) is None  # the least recently used went out
    assert cache.get(a, now=10.5) is None  # expired
    cache.put(a, _entry(b"x" * (MAX_ENTRY_BYTES + 1)))
    assert cache.get(a, now=11) is None
    small = MemoryCache(_cache(maxBytes=1000))
    for i in range(50):
        small.put(cache_key("/x", "t", None, b"%d" % i), _entry(b"y" * 300))
    assert small.bytes <= 1000 and len(small) == 2
    assert small.bytes == sum(e.size for e in small._entries.values())


def test_key_is_the_canonical_request_and_the_tenant() -> None:
    one = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    reordered = {"temperature": 0, "messages": one["messages"], "model": "m"}
    streamed = {**one, "stream": True, "stream_options": {"include_usage": True}, "user": "u1"}
    path = "/chat/completions"
    assert cache_key(path, "a", one, b"") == cache_key(path, "a", reordered, b"")
    assert cache_key(path, "a", one, b"") == cache_key(path, "a", streamed, b"")
    assert cache_key(path, "a", one, b"") != cache_key(path, "b", one, b"")  # tenant
    assert cache_key(path, "a", one, b"") != cache_key(path, "a", {**one, "seed": 1}, b"")
    assert cache_key(path, "a", one, b"") != cache_key(path, "a", {**one, "tools": []}, b"")
    assert cache_key(path, "a", one, b"") != cache_key("/embeddings", "a", one, b"")


def test_policy() -> None:
    default = _cache()
    assert cacheable(default, {"temperature": 0}, {})
    assert not cacheable(default, {}, {})  # OpenAI's default temperature is 1
    assert not cacheable(default, {"temperature": 0.7}, {})
    assert cacheable(default, {"temperature": 0.7}, {b"x-modelroute-cache": b"use"})
    assert cacheable(default, {"input": "text"}, {})  # embeddings
    assert not cacheable(default, {"temperature": 0, "n": 2}, {})
    always = _cache(policy="always")
    assert cacheable(always, {"temperature": 1.2}, {})
    assert not cacheable(always, {"n": 3}, {b"x-modelroute-cache": b"use"})


def test_cache_control_directives() -> None:
    assert cache_directives({}) == (True, True)
    assert cache_directives({b"cache-control": b"no-cache"}) == (False, True)
    assert cache_directives({b"cache-control": b"No-Store"}) == (False, False)


def test_entry_round_trips_and_damage_is_a_miss() -> None:
    entry = Entry(12.5, [(b"x-modelroute-provider", b"p")], b'{"a":1}\n{"b":2}', 0.25)
    assert Entry.load(entry.dump()) == entry
    assert Entry.load(b"garbage") is None
    assert Entry.load(b"{}\nbody") is None


_text = st.text(min_size=0, max_size=20)
_call = st.fixed_dictionaries(
    {"index": st.integers(0, 2), "id": _text, "name": _text, "arguments": _text}
)


@given(
    pieces=st.lists(_text, max_size=6),
    calls=st.lists(_call, max_size=4),
    finish=st.sampled_from(["stop", "length", "tool_calls"]),
)
def test_a_gathered_stream_replays_to_the_same_answer(
    pieces: list[str], calls: list[dict[str, object]], finish: str
) -> None:
    """Stream → completion → stream → completion is a fixed point: what a cached
    stream replays is exactly what was relayed."""
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    events += [{**head, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    for call in calls:
        delta = {
            "tool_calls": [
                {
                    "index": call["index"],
                    "id": call["id"],
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ]
        }
        events.append({**head, "choices": [{"index": 0, "delta": delta}]})
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    events.append({**head, "choices": [], "usage": usage})
    gathered = Gathered()
    gathered.feed(b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events))
    gathered.feed(b"data: [DONE]\n\n")
    answer = gathered.completion()
    assert answer is not None
    doc = orjson.loads(answer)
    assert doc["choices"][0]["message"]["content"] == ("".join(pieces) or None)
    assert doc["usage"] == usage
    replay = stream_of(answer, include_usage=True)
    assert replay is not None and replay.endswith(b"data: [DONE]\n\n")
    again = Gathered()
    again.feed(replay)
    assert again.completion() == answer
    without = stream_of(answer, include_usage=False)
    assert without is not None and b'"usage"' not in without


def test_an_unfinished_or_failed_stream_is_never_kept() -> None:
    gathered = Gathered()
    gathered.feed(b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hal"}}]}\n\n')
    assert gathered.completion() is None  # no finish_reason: cut short
    gathered.feed(b'data: {"error":{"message":"boom"}}\n\n')
    gathered.feed(b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    assert gathered.completion() is None


async def test_repeated_request_is_answered_from_cache_streaming_too(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=4)
    doc = route_doc({"deepseek": [("us-east-1", sim)]}, cache={"enabled": True, "ttl": "1m"})
    router = await make_router(doc)
    url = f"{router.url}/chat/completions"
    async with http.post(url, json=CHAT) as first:
        assert first.headers["x-modelroute-cache"] == "miss"
        body = await first.read()
        assert float(first.headers["x-modelroute-cost-usd"]) >= 0
    async with http.post(url, json=CHAT) as second:
        assert second.status == 200
        assert second.headers["x-modelroute-cache"] == "hit"
        assert second.headers["x-modelroute-provider"] == "deepseek"
        assert second.headers["x-modelroute-cost-usd"] == "0.00000000"
        assert await second.read() == body
    assert sim.stats.requests == 1
    async with http.post(url, json=CHAT, headers={"cache-control": "no-cache"}) as fresh:
        assert fresh.headers["x-modelroute-cache"] == "miss"
    stream_request = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with http.post(url, json=stream_request) as stream:
        assert stream.headers["x-modelroute-cache"] == "hit"
        assert stream.headers["content-type"].startswith("text/event-stream")
        replay = await stream.read()
    gathered = Gathered()
    gathered.feed(replay)
    assert gathered.completion() is not None
    assert (
        orjson.loads(gathered.completion() or b"")["choices"][0]["message"]["content"]
        == orjson.loads(body)["choices"][0]["message"]["content"]
    )
    assert b'"usage"' in replay and replay.endswith(b"data: [DONE]\n\n")
    assert sim.stats.requests == 2
    # A stream that missed is kept, and answers a later non-streaming request.
    other = {**CHAT, "messages": [{"role": "user", "content": "And 3+3?"}], "stream": True}
    async with http.post(url, json=other) as streamed:
        assert streamed.headers["x-modelroute-cache"] == "miss"
        await streamed.read()
    async with http.post(url, json={**other, "stream": False}) as plain:
        assert plain.headers["x-modelroute-cache"] == "hit"
        assert orjson.loads(await plain.read())["object"] == "chat.completion"
    assert sim.stats.requests == 3
    metrics = await (await http.get(f"http://127.0.0.1:{router.port}/metrics")).text()
    assert 'modelroute_cache_lookups_total{result="hit"} 3.0' in metrics
    assert 'modelroute_cache_tier_hits_total{tier="memory"} 3.0' in metrics


async def test_cache_off_by_default_and_failures_are_not_cached(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    for _ in range(2):
        async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
            assert "x-modelroute-cache" not in resp.headers
    assert sim.stats.requests == 2
    failing = await make_sim(fail_rate=1.0, fail_status=400)
    doc = route_doc({"deepseek": [("us-east-1", failing)]}, cache={"enabled": True})
    router = await make_router(doc)
    for _ in range(2):
        async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
            assert resp.status == 400
    assert failing.stats.requests == 2


async def test_sampled_requests_are_not_cached_by_default(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    doc = route_doc({"deepseek": [("us-east-1", sim)]}, cache={"enabled": True})
    router = await make_router(doc)
    sampled = {**CHAT, "temperature": 0.8}
    for _ in range(2):
        async with http.post(f"{router.url}/chat/completions", json=sampled) as resp:
            assert "x-modelroute-cache" not in resp.headers
    assert sim.stats.requests == 2
    for expect in ("miss", "hit"):
        headers = {"x-modelroute-cache": "use"}
        async with http.post(f"{router.url}/chat/completions", json=sampled, headers=headers) as r:
            assert r.headers["x-modelroute-cache"] == expect
    assert sim.stats.requests == 3
