"""The exact-match response cache: unit rules and behaviour through HTTP."""

from __future__ import annotations

import aiohttp

from modelroute.router.cache import MAX_ENTRY_BYTES, ResponseCache, cache_directives, cache_key
from modelroute.spec.model import Cache
from modelroute.spec.schema import Duration
from tests.router.conftest import RouterFactory, SimFactory, route_doc

CHAT = {"model": "chat-fast", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def test_lru_ttl_and_size_cap() -> None:
    cache = ResponseCache(Cache(enabled=True, ttl=Duration(10.0), max_entries=2))
    a, b, c = cache_key("/v1/x", b"a"), cache_key("/v1/x", b"b"), cache_key("/v1/x", b"c")
    cache.put(a, [], b"A", now=0)
    cache.put(b, [], b"B", now=0)
    assert cache.get(a, now=1) is not None  # a is now the most recently used
    cache.put(c, [], b"C", now=1)
    assert cache.get(b, now=1) is None  # the least recently used went out
    assert cache.get(a, now=10.5) is None  # expired
    cache.put(a, [], b"x" * (MAX_ENTRY_BYTES + 1), now=11)
    assert cache.get(a, now=11) is None
    assert cache_key("/v1/chat/completions", b"{}") != cache_key("/v1/embeddings", b"{}")


def test_cache_control_directives() -> None:
    assert cache_directives({}) == (True, True)
    assert cache_directives({b"cache-control": b"no-cache"}) == (False, True)
    assert cache_directives({b"cache-control": b"No-Store"}) == (False, False)


async def test_repeated_request_is_answered_from_cache(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=4)
    doc = route_doc({"deepseek": [("us-east-1", sim)]}, cache={"enabled": True, "ttl": "1m"})
    router = await make_router(doc)
    url = f"{router.url}/chat/completions"
    async with http.post(url, json=CHAT) as first:
        assert first.headers["x-modelroute-cache"] == "miss"
        body = await first.read()
    async with http.post(url, json=CHAT) as second:
        assert second.status == 200
        assert second.headers["x-modelroute-cache"] == "hit"
        assert second.headers["x-modelroute-provider"] == "deepseek"
        assert await second.read() == body
    assert sim.stats.requests == 1
    async with http.post(url, json=CHAT, headers={"cache-control": "no-cache"}) as fresh:
        assert fresh.headers["x-modelroute-cache"] == "miss"
    async with http.post(url, json={**CHAT, "stream": True}) as stream:
        await stream.read()
        assert "x-modelroute-cache" not in stream.headers
    assert sim.stats.requests == 3
    metrics = await (await http.get(f"http://127.0.0.1:{router.port}/metrics")).text()
    assert 'modelroute_cache_lookups_total{result="hit"} 1.0' in metrics
    assert 'modelroute_cache_lookups_total{result="miss"} 2.0' in metrics


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
