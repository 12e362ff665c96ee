"""``modelroute demo``: simulated upstreams in three "regions" and a router in front.

Nothing leaves the machine and no API key is needed: the upstreams are
:mod:`.sim` servers on loopback, and the router runs from a ModelRoute file
written next to them, the same kind of file a user would ``kubectl apply``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path
from typing import Any

import yaml

from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimBehaviour, SimServer, start_sim

UPSTREAMS = (
    # provider, region, simulated latency before the first token (ms)
    ("deepseek", "us-east-1", 40.0),
    ("deepseek", "eu-west-1", 90.0),
    ("qwen", "us-east-1", 60.0),
)


def demo_route(ports: dict[tuple[str, str], int]) -> dict[str, Any]:
    """The embedded ModelRoute: two regions, two providers, one fallback chain."""

    def endpoints(provider: str) -> list[dict[str, Any]]:
        return [
            {"region": region, "baseURL": f"http://127.0.0.1:{port}/v1"}
            for (name, region), port in ports.items()
            if name == provider
        ]

    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "demo"},
        "spec": {
            "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
            "providers": [
                {
                    "name": "deepseek",
                    "endpoints": endpoints("deepseek"),
                    "pricing": {"deepseek-ai/DeepSeek-V4-Flash": {"input": 0.27, "output": 1.10}},
                },
                {
                    "name": "qwen",
                    "endpoints": endpoints("qwen"),
                    "pricing": {
                        "qwen-plus": {"input": 0.40, "output": 1.20},
                        "text-embedding-v3": {"input": 0.07, "output": 0.0},
                    },
                },
            ],
            "models": [
                {
                    "name": "chat-fast",
                    "targets": [
                        {"provider": "deepseek", "model": "deepseek-ai/DeepSeek-V4-Flash"},
                        {"provider": "qwen", "model": "qwen-plus"},
                    ],
                },
                {"name": "embed", "targets": [{"provider": "qwen", "model": "text-embedding-v3"}]},
            ],
            "server": {"shutdownDelay": "0s", "accessLog": True},
        },
    }


async def run_demo(host: str, port: int, workdir: Path | None = None) -> int:
    sims: list[SimServer] = []
    ports: dict[tuple[str, str], int] = {}
    for provider, region, latency in UPSTREAMS:
        sim = await start_sim(
            behaviour=SimBehaviour(
                latency_ms=latency, tokens=24, token_delay_ms=15, name=provider, region=region
            )
        )
        sims.append(sim)
        ports[(provider, region)] = sim.port
    directory = workdir or Path(tempfile.mkdtemp(prefix="modelroute-demo-"))
    config = directory / "route.yaml"
    config.write_text(yaml.safe_dump(demo_route(ports), sort_keys=False))
    router = RouterServer(config, region="us-east-1", secrets_dir=directory / "secrets")
    await router.start(host, port)
    base = f"http://{host}:{router.port}"
    print(
        f"""
modelroute demo: a router for region us-east-1 on {base}
  upstreams (simulated): {", ".join(f"{p}@{r} :{ports[(p, r)]}" for p, r, _ in UPSTREAMS)}
  config: {config}   (edit it: the router reloads on save)

Try:
  curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "chat-fast", "messages": [{{"role": "user", "content": "Hello"}}]}}'
  curl -sN {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "chat-fast", "stream": true, "messages": [{{"role": "user", "content": "Hi"}}]}}'
  curl -s {base}/v1/messages -H 'content-type: application/json' \
    -d '{{"model": "chat-fast", "max_tokens": 64, "messages": [{{"role": "user", "content": "Hi"}}]}}'
  curl -s {base}/v1/models
  curl -s {base}/metrics | grep ^modelroute_

Or any OpenAI client: OpenAI(base_url="{base}/v1", api_key="unused")
(chat.completions and responses), or Anthropic's: Anthropic(base_url="{base}", api_key="unused")
Ctrl-C to stop.
""",
        flush=True,
    )
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await stop
    await router.drain(delay=0.0, timeout=5.0)
    for sim in sims:
        with contextlib.suppress(Exception):
            await sim.close()
    return 0
