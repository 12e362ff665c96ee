"""Spending less: the model registry's filters, cost with cached tokens, tiers, degradation
and cost ceilings, through a real router on loopback against simulated upstreams."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from modelroute.router.sim import SimServer
from tests.router.conftest import RouterFactory, SimFactory, quiet_route

CHAT_PATH = "/v1/chat/completions"


def chat(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


def calls(sim: SimServer) -> int:
    return sim.stats.by_path.get(CHAT_PATH, 0)


def two_targets(
    first: SimServer,
    second: SimServer,
    first_info: dict[str, Any] | None = None,
    second_info: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """Model ``chat``: provider ``small`` (model s) then ``big`` (model b)."""
    doc = quiet_route(
        {"small": [("us-east-1", first)], "big": [("us-east-1", second)]},
        models={"chat": [("small", "s"), ("big", "b")]},
        **spec,
    )
    providers = doc["spec"]["providers"]
    providers[0]["models"] = {"s": first_info or {}}
    providers[1]["models"] = {"b": second_info or {}}
    return doc


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **headers: str
) -> tuple[int, dict[str, str], Any]:
    async with http.post(f"{url}/chat/completions", json=body, headers=headers) as resp:
        return resp.status, dict(resp.headers), orjson.loads(await resp.read())


async def test_a_prompt_over_a_targets_window_skips_it_before_any_call(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    small, big = await make_sim(), await make_sim()
    doc = two_targets(small, big, {"contextWindow": 200}, {"contextWindow": 100_000})
    router = await make_router(doc)
    status, headers, _ = await post(http, router.url, chat("word " * 400))
    assert status == 200 and headers["x-modelroute-provider"] == "big"
    assert headers["x-modelroute-skipped"] == "small/s=context-window"
    assert calls(small) == 0
    status, headers, _ = await post(http, router.url, chat("short"))
    assert headers["x-modelroute-provider"] == "small" and "x-modelroute-skipped" not in headers


async def test_a_request_needing_a_capability_skips_models_without_it(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    small, big = await make_sim(), await make_sim()
    doc = two_targets(
        small, big, {"capabilities": []}, {"capabilities": ["tools", "vision", "jsonSchema"]}
    )
    router = await make_router(doc)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    for extra, reason in (
        ({"tools": tools}, "tools"),
        ({"response_format": schema}, "json-schema"),
        ({"messages": [{"role": "user", "content": image}]}, "vision"),
    ):
        status, headers, _ = await post(http, router.url, chat(**extra))
        assert status == 200 and headers["x-modelroute-provider"] == "big"
        assert headers["x-modelroute-skipped"] == f"small/s={reason}"
    assert calls(small) == 0
    # no target can reason: an OpenAI-shaped 400 that names why
    status, _, body = await post(http, router.url, chat(reasoning_effort="high"))
    assert status == 400 and body["error"]["code"] == "no_capable_target"
    assert "small/s=reasoning" in body["error"]["message"]


async def test_context_length_exceeded_moves_on_to_a_larger_window(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    small, big = await make_sim(context_window=50), await make_sim(context_window=100_000)
    router = await make_router(two_targets(small, big))  # the registry says nothing
    status, headers, _ = await post(http, router.url, chat("word " * 200))
    assert status == 200 and headers["x-modelroute-provider"] == "big"
    assert calls(small) == 1  # it was asked, said no, and the request moved on
    # an answer cut by max_tokens is the client's business: passed through untouched
    status, headers, body = await post(http, router.url, chat("hi", max_tokens=2))
    assert status == 200 and body["choices"][0]["finish_reason"] == "length"
    assert headers["x-modelroute-provider"] == "small"


async def test_cost_counts_cached_prompt_tokens_at_the_cached_price(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(prefix_cache_ttl=60)
    doc = quiet_route({"ds": [("us-east-1", sim)]}, models={"chat": [("ds", "flash")]})
    doc["spec"]["providers"][0]["models"] = {
        "flash": {"input": 0.27, "output": 1.10, "cachedInput": 0.07}
    }
    router = await make_router(doc)
    long = chat("Summarise our policy. " + "The policy text goes on and on. " * 400)
    _, first, body1 = await post(http, router.url, long)
    _, second, body2 = await post(http, router.url, long)
    usage1, usage2 = body1["usage"], body2["usage"]
    cached = usage2["prompt_tokens_details"]["cached_tokens"]
    assert usage1["prompt_tokens_details"]["cached_tokens"] == 0 and cached > 1000

    def expected(usage: dict[str, Any], cached: int) -> float:
        fresh = int(usage["prompt_tokens"]) - cached
        return (fresh * 0.27 + cached * 0.07 + int(usage["completion_tokens"]) * 1.10) / 1e6

    assert float(first["x-modelroute-cost-usd"]) == round(expected(usage1, 0), 8)
    assert float(second["x-modelroute-cost-usd"]) == round(expected(usage2, cached), 8)
    assert float(second["x-modelroute-cost-usd"]) < float(first["x-modelroute-cost-usd"])


def tiered(
    economy: SimServer, standard: SimServer, premium: SimServer, **tiers: Any
) -> dict[str, Any]:
    doc = quiet_route(
        {
            "cheap": [("us-east-1", economy)],
            "mid": [("us-east-1", standard)],
            "top": [("us-east-1", premium)],
        },
        models={"flash": [("cheap", "flash")], "pro": [("mid", "pro")], "gpt": [("top", "gpt-4o")]},
    )
    doc["spec"]["models"].append(
        {
            "name": "chat",
            "tiers": {"economy": "flash", "standard": "pro", "premium": "gpt", **tiers},
        }
    )
    return doc


HARD = (
    "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain "
    "precisely why no known proof exists and what the strongest partial results are."
)


async def test_tiers_route_by_complexity_and_obey_the_header_and_rules(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    economy, standard, premium = await make_sim(), await make_sim(), await make_sim()
    rules = [{"systemPromptContains": "LEGAL REVIEW", "tier": "premium"}]
    router = await make_router(tiered(economy, standard, premium, rules=rules))
    status, headers, _ = await post(http, router.url, chat("What is the capital of France?"))
    assert status == 200 and headers["x-modelroute-tier"] == "economy"
    assert headers["x-modelroute-provider"] == "cheap"
    _, headers, _ = await post(http, router.url, chat(HARD))
    assert headers["x-modelroute-tier"] == "premium" and headers["x-modelroute-provider"] == "top"
    _, headers, _ = await post(http, router.url, chat("hi"), **{"x-modelroute-tier": "standard"})
    assert headers["x-modelroute-tier"] == "standard" and headers["x-modelroute-provider"] == "mid"
    system = {"role": "system", "content": "LEGAL REVIEW of contracts"}
    body = {"model": "chat", "messages": [system, {"role": "user", "content": "ok?"}]}
    _, headers, _ = await post(http, router.url, body)
    assert headers["x-modelroute-tier"] == "premium"
    status, _, error = await post(http, router.url, chat("hi"), **{"x-modelroute-tier": "gold"})
    assert status == 400 and error["error"]["param"] == "x-modelroute-tier"
    async with http.get(f"http://127.0.0.1:{router.port}/metrics") as resp:
        text = await resp.text()
    assert 'modelroute_tier_decisions_total{model="chat",tier="premium"} 2.0' in text


async def test_a_tier_that_cannot_answer_degrades_with_a_note(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    economy, standard = await make_sim(), await make_sim()
    premium = await make_sim(refuse=True)
    router = await make_router(tiered(economy, standard, premium))
    status, headers, _ = await post(http, router.url, chat(HARD))
    assert status == 200
    assert headers["x-modelroute-degraded"] == "premium->standard"
    assert headers["x-modelroute-provider"] == "mid"
    no_degrade = await make_router(tiered(economy, standard, premium, degrade=False))
    status, headers, _ = await post(http, no_degrade.url, chat(HARD))
    assert status == 503 and "x-modelroute-degraded" not in headers


async def test_a_cost_ceiling_skips_dear_targets_and_refuses_when_none_fits(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    dear, cheap = await make_sim(), await make_sim()
    doc = two_targets(dear, cheap, {"input": 2.50, "output": 10.0}, {"input": 0.27, "output": 1.10})
    router = await make_router(doc)
    # worst case with max_tokens 1000: ~$0.01 at the dear target, ~$0.0011 at the cheap one
    ceiling = {"x-modelroute-max-cost-usd": "0.005"}
    status, headers, _ = await post(http, router.url, chat(max_tokens=1000), **ceiling)
    assert status == 200 and headers["x-modelroute-provider"] == "big"
    assert headers["x-modelroute-skipped"] == "small/s=cost-ceiling"
    status, _, body = await post(
        http, router.url, chat(max_tokens=1000), **{"x-modelroute-max-cost-usd": "0.0001"}
    )
    assert status == 400 and body["error"]["code"] == "cost_ceiling_exceeded"
    assert "0.0001 USD" in body["error"]["message"] and "0.0011" in body["error"]["message"]
    assert calls(dear) == 0 and calls(cheap) == 1


async def test_a_conversation_sticks_to_its_endpoint_while_it_is_healthy(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    a, b = await make_sim(name="a"), await make_sim(name="b")
    doc = quiet_route({"ds": [("us-east-1", a), ("us-east-1", b)]}, models={"chat": [("ds", "m")]})
    router = await make_router(doc)
    system = {"role": "system", "content": "You are a careful assistant. " * 50}
    for conversation in range(6):
        first = {"role": "user", "content": f"Conversation {conversation}: hello"}
        messages = [system, first]
        answered_by = set()
        for turn in range(5):
            status, headers, body = await post(
                http, router.url, {"model": "chat", "messages": messages}
            )
            assert status == 200
            answered_by.add(headers["x-sim-name"])
            messages = [
                *messages,
                body["choices"][0]["message"],
                {"role": "user", "content": f"turn {turn}"},
            ]
        assert len(answered_by) == 1, f"conversation {conversation} moved: {answered_by}"
    # explicit keys work the same way, and the key passes through to the upstream
    seen = set()
    for i in range(8):
        body = chat(f"question {i}", prompt_cache_key="tenant-7")
        _, headers, _ = await post(http, router.url, body)
        seen.add(headers["x-sim-name"])
    assert len(seen) == 1
    answered = a if seen == {"a"} else b
    assert answered.stats.last_body["prompt_cache_key"] == "tenant-7"


async def test_affinity_yields_to_health(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    a, b = await make_sim(name="a"), await make_sim(name="b")
    doc = quiet_route({"ds": [("us-east-1", a), ("us-east-1", b)]}, models={"chat": [("ds", "m")]})
    router = await make_router(doc)
    headers = {"x-session-id": "s-1"}
    _, first, _ = await post(http, router.url, chat("hi"), **headers)
    sticky = a if first["x-sim-name"] == "a" else b
    other = b if sticky is a else a
    sticky.behaviour.update({"refuse": True})
    for _ in range(3):
        status, answer, _ = await post(http, router.url, chat("again"), **headers)
        assert status == 200 and answer["x-sim-name"] == other.behaviour.name
    sticky.behaviour.update({"refuse": False})


async def test_a_conversations_tier_goes_up_never_down(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    economy, standard, premium = await make_sim(), await make_sim(), await make_sim()
    router = await make_router(tiered(economy, standard, premium))
    headers = {"x-session-id": "thread-42"}
    _, first, _ = await post(http, router.url, chat(HARD), **headers)
    assert first["x-modelroute-tier"] == "premium"
    _, follow_up, _ = await post(http, router.url, chat("ok, thanks!"), **headers)
    assert follow_up["x-modelroute-tier"] == "premium"
    _, alone, _ = await post(http, router.url, chat("ok, thanks!"))
    assert alone["x-modelroute-tier"] != "premium"


async def test_a_malformed_cost_ceiling_is_a_400(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    router = await make_router(
        quiet_route({"ds": [("us-east-1", sim)]}, models={"chat": [("ds", "m")]})
    )
    for value in ("cheap", "nan", "inf", "-1"):
        status, _, body = await post(
            http, router.url, chat(), **{"x-modelroute-max-cost-usd": value}
        )
        assert status == 400 and body["error"]["param"] == "x-modelroute-max-cost-usd", value
    assert calls(sim) == 0
