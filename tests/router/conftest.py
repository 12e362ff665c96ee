"""Fixtures for router tests: simulated upstreams and in-process routers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimBehaviour, SimServer, start_sim

SimFactory = Callable[..., Awaitable[SimServer]]
RouterFactory = Callable[..., Awaitable[RouterServer]]


def route_doc(
    endpoints: dict[str, list[tuple[str, SimServer]]],
    models: dict[str, list[tuple[str, str]]] | None = None,
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1"),
    **spec: Any,
) -> dict[str, Any]:
    """A ModelRoute document: ``endpoints`` maps provider → [(region, sim)],
    ``models`` maps client model → [(provider, upstream model)]."""
    if models is None:
        first = next(iter(endpoints))
        models = {"chat-fast": [(first, "upstream-model")]}
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "test"},
        "spec": {
            "regions": [{"name": region} for region in regions],
            "providers": [
                {
                    "name": provider,
                    "endpoints": [{"region": region, "baseURL": sim.url} for region, sim in where],
                    "pricing": {"upstream-model": {"input": 1.0, "output": 2.0}},
                }
                for provider, where in endpoints.items()
            ],
            "models": [
                {"name": name, "targets": [{"provider": p, "model": m} for p, m in chain]}
                for name, chain in models.items()
            ],
            **spec,
        },
    }


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start simulated upstreams (``make_sim(latency_ms=5, ...)``); all closed at the end."""
    sims: list[SimServer] = []

    async def make(**behaviour: Any) -> SimServer:
        sim = await start_sim(behaviour=SimBehaviour(**behaviour))
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.close()


@pytest.fixture
async def make_router(tmp_path: Path) -> AsyncIterator[RouterFactory]:
    """Start a router from a ModelRoute document; the file is ``router.config_path``."""
    routers: list[RouterServer] = []

    async def make(doc: dict[str, Any], region: str | None = None, **kwargs: Any) -> RouterServer:
        config = tmp_path / f"route-{len(routers)}.yaml"
        config.write_text(yaml.safe_dump(doc))
        kwargs.setdefault("secrets_dir", tmp_path / "secrets")
        kwargs.setdefault("reload_interval", 0.05)
        router = RouterServer(config, region=region, **kwargs)
        await router.start()
        routers.append(router)
        return router

    yield make
    for router in routers:
        if router._tasks or router.http.connections:
            await router.close()


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """One simulated upstream with default behaviour (tests change ``sim.behaviour``)."""
    async with SimServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll until ``check()`` holds (counters and state owned by another task)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def quiet_route(endpoints: dict[str, list[tuple[str, SimServer]]], **kwargs: Any) -> dict[str, Any]:
    """``route_doc`` without active health checks: their probes, at a random moment,
    would show up in the simulators' counters that tests assert on."""
    doc = route_doc(endpoints, **kwargs)
    doc["spec"].setdefault("resilience", {})["healthCheck"] = {"enabled": False}
    return doc


async def scrape(http: aiohttp.ClientSession, router: RouterServer) -> str:
    """The router's /metrics text."""
    async with http.get(f"http://127.0.0.1:{router.port}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


def _samples(text: str, name: str, labels: dict[str, str]) -> list[float]:
    return [
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The first sample of ``name`` whose labels include ``labels``; None if none."""
    found = _samples(text, name, labels)
    return found[0] if found else None


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(_samples(text, name, labels))


def sse_events(body: bytes) -> list[Any]:
    """The data payloads of an SSE body, parsed ("[DONE]" kept as the string)."""
    events: list[Any] = []
    for line in body.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
            events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events
