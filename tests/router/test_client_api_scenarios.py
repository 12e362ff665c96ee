"""Anthropic and Responses clients under load: a real router process, shipped defaults,
24 concurrent streaming clients, a flaky first target.

Each client asks for a different number of output tokens, so each can tell its own
answer from another's: every one must get a complete, well-formed stream (by its
SDK's accumulator) with exactly the tokens it asked for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.router.conftest import SimFactory, route_doc
from tests.router.scripted import router_process

CHAT = "/v1/chat/completions"


async def test_24_translated_streams_each_get_their_own_complete_answer(
    make_sim: SimFactory, tmp_path: Path
) -> None:
    flaky = await make_sim(tokens=40, fail_rate=0.3, fail_status=500)
    steady = await make_sim(tokens=40)
    doc = route_doc(
        {"flaky": [("us-east-1", flaky)], "steady": [("us-east-1", steady)]},
        models={"chat-fast": [("flaky", "upstream-model"), ("steady", "upstream-model")]},
        regions=("us-east-1",),
    )
    async with router_process(doc, tmp_path) as router:
        claude = AsyncAnthropic(base_url=router.base, api_key="x", max_retries=0, timeout=30)
        gpt = AsyncOpenAI(base_url=f"{router.base}/v1", api_key="x", max_retries=0, timeout=30)
        try:

            async def messages(tokens: int) -> tuple[int, int, str | None]:
                async with claude.messages.stream(
                    model="chat-fast",
                    max_tokens=tokens,
                    messages=[{"role": "user", "content": f"client wanting {tokens}"}],
                ) as stream:
                    final = await stream.get_final_message()
                text = "".join(b.text for b in final.content if b.type == "text")
                return tokens, len(text.split()), final.stop_reason

            async def responses(tokens: int) -> tuple[int, int, str | None]:
                # Cut by max_output_tokens, a Response ends with response.incomplete, as
                # OpenAI's does (the SDK's get_final_response wants response.completed).
                final = None
                async with gpt.responses.stream(
                    model="chat-fast",
                    max_output_tokens=tokens,
                    input=f"client wanting {tokens}",
                ) as stream:
                    async for event in stream:
                        if event.type == "response.incomplete":
                            final = event.response
                assert final is not None and final.usage is not None
                assert final.usage.output_tokens == tokens
                reason = final.incomplete_details.reason if final.incomplete_details else None
                return tokens, len(final.output_text.split()), reason

            results = await asyncio.gather(
                *(messages(3 + i) for i in range(12)),
                *(responses(3 + i) for i in range(12, 24)),
            )
        finally:
            await claude.close()
            await gpt.close()
    for asked, got, reason in results:
        assert got == asked  # its own answer, whole: never another's, never cut
        assert reason in ("max_tokens", "max_output_tokens")
    answered = steady.stats.by_path.get(CHAT, 0) + flaky.stats.completed
    assert answered >= 24
    assert flaky.stats.errors > 0  # the failover path was walked
