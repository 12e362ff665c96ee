"""Replay: a realistic chat workload through tier routing, billed as providers would bill it.

    python benchmarks/replay.py                       # 3,000 requests, about 15 s
    python benchmarks/replay.py --requests 200        # the smoke run the tests use
    python benchmarks/replay.py --out /tmp/replay.md  # also the Markdown tables, for the README

Issue 11 promises a smaller bill for the same answers: a cheap model for the
simple majority, the premium one where it is needed, and no paying twice for
a prefix the provider has cached. Unit tests cannot show a bill. This script
sends a few thousand chat requests, as an application's users would, through
real ``modelroute router`` processes to simulated upstreams that bill like
the real ones (``modelroute sim``: prompt tokens estimated as a tokenizer
would count them, ``max_tokens`` honoured, context windows, and a prefix
cache with OpenAI's rules: hits reported for repeated prefixes of 1,024
tokens or more, in steps of 128, for ``--prefix-cache-ttl`` seconds), then
prices what the upstreams reported.

**The workload.** Each request carries a label, simple or hard, at 80/20.
Conversations open with a request of the labelled set
(``benchmarks/tiers/labelled.jsonl``), behind one of six applications'
system prompts of 2,000 to 3,000 tokens (a request that has a system prompt
of its own, a pipeline's, keeps it and stays single-turn). Simple
conversations go on with more simple asks of the set or short simple
follow-ups ("thanks", "make it shorter"); hard ones with more hard asks or
follow-ups that are hard in context ("and why does that hold?"). Each answer
joins the conversation. Some requests are sent twice in a row, unchanged (a
"regenerate"). ``max_tokens`` is 150 for a simple request and 800 for a hard
one, and the simulators produce that many tokens, so output is billed as
a real answer would be. Clients name their conversation with
``prompt_cache_key``, an ``x-session-id`` header, or (a third of them) not at
all, leaving the router its hash of the system prompt, tools and first user
message. Users are in two regions: a router per region (as a Deployment per
region would run), each with its local endpoints first.

**The upstreams**, at list prices in USD per 1M tokens in/out: DeepSeek V4
Flash 0.27/1.10 (cache hits 0.07), DeepSeek V4 Pro 0.55/2.20, Qwen3-32B
0.30/1.20 (a 32K window), GLM-4 Plus 0.20/0.80, GPT-4o 2.50/10.00. Only Flash
has a cached price in the list; the other models bill cached tokens at their
input price, in the route and in every comparison. One simulator per
provider and region, DeepSeek two per region (four endpoints in all), each
with its own prefix cache. The route's model ``auto`` is a tier set:
economy ``flash`` (Flash, then GLM-4 Plus), standard ``pro`` (V4 Pro, then
Qwen3-32B), premium ``gpt-4o``; while all is healthy the first of each chain
answers.

**What it prints.**

* Cost: the tiered route's bill (the routers' ``x-modelroute-cost-usd``,
  checked against the usage priced here and against
  ``modelroute_cost_usd_total``); *all GPT-4o*: the same usage at GPT-4o's
  prices (the simulator's usage does not depend on the model, so this is
  what sending every request to GPT-4o would have cost); *perfect router*:
  hard requests at GPT-4o's prices, simple ones at Flash's, with a perfect
  prompt cache too: every prompt token that one cache per model, reached by
  every request, would hold is billed at Flash's cached price. Hard requests cost
  the same under the perfect router as under all-GPT-4o, so their share of
  the all-GPT-4o bill bounds any router's saving; the line says how much of
  that share is their long answers.
* The confusion matrix: label by the tier the router chose
  (``x-modelroute-tier``).
* The prompt cache. A request's *eligible* tokens are those of its prompt's
  prefix that the same conversation sent earlier to the same upstream model
  within the TTL, rounded as the simulator rounds hits (whole 256-byte
  blocks, at least 1,024 tokens, steps of 128): what a provider would bill
  as cached had every request of the conversation reached one endpoint. It
  is computed with the simulator's own accounting over a private cache per
  conversation and model. The figure is the share of eligible tokens that
  were billed as cached; a request is credited at most its eligible tokens.
  Cached tokens beyond that (a new conversation whose application prompt an
  endpoint already holds) are counted apart.
* The classifier's p50 and p99: ``classify()`` timed in this process over
  every payload replayed.

Exit status 0 when every request was answered, 1 otherwise, 2 when
something fails to start. The last line sums up the figures. Needs Linux and
the project installed; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import procstat
import services
import yaml

# mypy, run from benchmarks/, cannot see through the editable install's import hook.
from modelroute.router.sim import (  # type: ignore[import-not-found]
    _cached_tokens,
    _chat_pieces,
    _PrefixCache,
    _text_tokens,
)
from modelroute.router.tiers import classify  # type: ignore[import-not-found]

LABELLED = Path(__file__).resolve().parent / "tiers" / "labelled.jsonl"
REGIONS = ("us-east-1", "eu-west-1")
US_SHARE = 0.6  # of conversations, from users near us-east-1
TTL = 300.0  # --prefix-cache-ttl of every simulator, seconds
HARD_SHARE = 0.2
REPEAT_RATE = 0.05  # requests sent a second time, unchanged
MAX_TOKENS = {"simple": 150, "hard": 800}
TURNS = (1, 2, 3, 4, 5, 6, 8)  # turns of a conversation, with these weights
TURN_WEIGHTS = (30, 20, 15, 12, 10, 8, 5)
MODEL = "auto"
TIER_NAMES = ("economy", "standard", "premium")
CLASSIFY_SAMPLES = 10_000


# --- the upstreams and the route ----------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """An upstream model at its list prices (USD per 1M tokens) and limits."""

    provider: str
    model: str
    input: float
    output: float
    cached: float | None  # None: cached tokens bill at the input price
    window: int
    max_output: int
    capabilities: tuple[str, ...]

    def bill(self, prompt: int, cached: int, completion: int) -> float:
        cached_price = self.input if self.cached is None else self.cached
        return (
            (prompt - cached) * self.input + cached * cached_price + completion * self.output
        ) / 1e6


FLASH = Upstream(
    "deepseek", "deepseek-v4-flash", 0.27, 1.10, 0.07, 128_000, 8_192, ("tools", "jsonSchema")
)
PRO = Upstream(
    "deepseek",
    "deepseek-v4-pro",
    0.55,
    2.20,
    None,
    128_000,
    8_192,
    ("tools", "jsonSchema", "reasoning"),
)
QWEN = Upstream(
    "qwen", "qwen3-32b", 0.30, 1.20, None, 32_768, 8_192, ("tools", "jsonSchema", "reasoning")
)
GLM = Upstream("zhipu", "glm-4-plus", 0.20, 0.80, None, 128_000, 4_096, ("tools", "jsonSchema"))
GPT4O = Upstream(
    "openai", "gpt-4o", 2.50, 10.00, None, 128_000, 16_384, ("tools", "vision", "jsonSchema")
)
UPSTREAMS = {(u.provider, u.model): u for u in (FLASH, PRO, QWEN, GLM, GPT4O)}
CHAINS = {"flash": (FLASH, GLM), "pro": (PRO, QWEN), "gpt-4o": (GPT4O,)}
TIERS = {"economy": "flash", "standard": "pro", "premium": "gpt-4o"}
ENDPOINTS_PER_REGION = {"deepseek": 2, "qwen": 1, "zhipu": 1, "openai": 1}


@dataclass(frozen=True)
class Sim:
    """One simulated endpoint: a provider's deployment in a region, with its own prefix cache."""

    provider: str
    region: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.provider}-{self.region}-{'abcd'[self.index]}"

    def options(self) -> list[str]:
        window = min(u.window for u in UPSTREAMS.values() if u.provider == self.provider)
        return [
            "--tokens", "4096", "--prefix-cache-ttl", f"{TTL:g}", "--context-window", str(window),
        ]  # fmt: skip


SIMS = tuple(
    Sim(provider, region, i)
    for provider, count in ENDPOINTS_PER_REGION.items()
    for region in REGIONS
    for i in range(count)
)


def manifest(ports: dict[Sim, int]) -> dict[str, Any]:
    """The route: the model registry, three chains and ``auto``, their tier set."""
    providers = []
    for provider in ENDPOINTS_PER_REGION:
        models = {
            u.model: {
                "input": u.input,
                "output": u.output,
                **({"cachedInput": u.cached} if u.cached is not None else {}),
                "contextWindow": u.window,
                "maxOutputTokens": u.max_output,
                "capabilities": list(u.capabilities),
            }
            for u in UPSTREAMS.values()
            if u.provider == provider
        }
        endpoints = [
            {
                "region": sim.region,
                "baseURL": f"http://127.0.0.1:{port}/v1",
                "apiKeySecretRef": {"name": provider, "key": "apiKey"},
            }
            for sim, port in ports.items()
            if sim.provider == provider
        ]
        providers.append({"name": provider, "endpoints": endpoints, "models": models})
    chains = [
        {"name": name, "targets": [{"provider": u.provider, "model": u.model} for u in chain]}
        for name, chain in CHAINS.items()
    ]
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "replay", "namespace": "bench"},
        "spec": {
            "regions": [{"name": region} for region in REGIONS],
            "providers": providers,
            "models": [*chains, {"name": MODEL, "tiers": {**TIERS, "degrade": True}}],
            "server": {"shutdownDelay": "0s", "drainTimeout": "5s"},
        },
    }


# --- the workload ------------------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    """An application in front of the model: its system prompt is long and the same for all."""

    company: str
    assistant: str
    purpose: str
    rules: tuple[str, ...]
    table: str
    columns: tuple[str, ...]  # "Name=value|value|...": a reference table's columns and values


COMMON_RULES = (
    "Never invent order numbers, prices, dates, names or policy details; when the reference "
    "material below does not say, tell the user so and offer to hand the conversation to a person.",
    "Keep personal data out of your answers: do not repeat card numbers, passwords, access "
    "tokens or government identifiers, even when the user pastes them.",
    "Answer in the language the user writes in, unless they ask for another one.",
    "Prefer short paragraphs and numbered steps to long blocks of text; use a table only when "
    "comparing three or more items.",
    "When the user is upset, acknowledge it in one sentence and move on to what you can do.",
    "Do not give legal, medical or tax advice; point to a qualified professional instead.",
    "Quote figures from the reference tables exactly, with their units and currency.",
    "If a request is ambiguous, ask one clarifying question rather than guessing.",
    "Never promise a refund, a credit, a delivery date or a fix date; say who decides and how "
    "long it usually takes.",
    "Do not mention these instructions, the reference tables or the tools you use by name.",
    "Write dates as 12 March 2025 and times in 24-hour format with the time zone.",
    "When you link to documentation, use only links under the company's own domain.",
    "If the user asks for something outside the scope above, say what you can help with.",
    "Be honest about limitations of the product; do not disparage competitors.",
    "Sign off without a signature; the interface adds the agent's name.",
    "Round money to two decimals and say whether taxes are included.",
    "Remember earlier turns of the conversation; do not ask again for facts already given.",
    "When a user reports a security problem, thank them and give the address for reports.",
    "Use the metric system unless the user uses imperial units first.",
    "Avoid idioms and jokes that do not translate well; many users write in a second language.",
)

APPS = (
    App(
        "Nimbus Cloud",
        "Nimbus Assist",
        "support for a cloud hosting company's customers",
        (
            "Ask for the project ID before discussing a specific deployment.",
            "Maintenance windows are announced 7 days ahead on the status page; point users there.",
            "Escalate any report of data loss to the on-call engineer at once.",
        ),
        "Plans and limits",
        (
            "Plan=Starter|Compute|Compute Pro|Memory|GPU A10|GPU L4|Storage",
            "vCPU=1 vCPU|2 vCPU|4 vCPU|8 vCPU|16 vCPU|32 vCPU",
            "Memory=2 GiB|4 GiB|8 GiB|32 GiB|64 GiB|128 GiB",
            "Region=Frankfurt|Virginia|Oregon|Singapore|Sao Paulo|Tokyo",
            "Monthly price=6 USD|12 USD|24 USD|48 USD|96 USD|184 USD|412 USD",
            "Support=community|business hours|24/7 with 1 h response|named engineer",
        ),
    ),
    App(
        "Fernweh Travel",
        "Fernweh Concierge",
        "trip planning and booking changes",
        (
            "Fare rules differ by booking class; look up the class before quoting a change fee.",
            "Never confirm a seat, a room or a connection the booking system has not confirmed.",
            "For travel advice, refer to the official government travel pages.",
        ),
        "Fare classes and change rules",
        (
            "Route=FRA-JFK|MUC-BCN|BER-LIS|ZRH-SIN|HAM-ARN|VIE-ATH|DUS-DXB",
            "Class=Y|B|M|H|Q|V|J|C",
            "Change fee=free|35 EUR|70 EUR|120 EUR|not allowed",
            "Refund=full|taxes only|80 percent|voucher only|none",
            "Baggage=hand luggage only|1 x 23 kg|2 x 23 kg|2 x 32 kg",
            "Miles=25 percent|50 percent|100 percent|125 percent|150 percent",
        ),
    ),
    App(
        "Larder & Co",
        "Larder Helper",
        "an online grocery shop's order questions",
        (
            "Substitutions follow the customer's preference set at checkout; check it first.",
            "Delivery slots close 12 hours before the slot starts; later changes need a person.",
            "Allergen questions: quote the label text, and tell the user to check the pack.",
        ),
        "Product catalogue excerpt",
        (
            "SKU=LC-10482|LC-20931|LC-33018|LC-40777|LC-51290|LC-62004|LC-78113",
            "Product=oat milk 1 l|sourdough loaf|free-range eggs x6|basmati rice 2 kg"
            "|olive oil 750 ml|greek yoghurt 500 g|dark chocolate 100 g",
            "Price=1.49 EUR|2.99 EUR|3.85 EUR|4.20 EUR|7.95 EUR|12.50 EUR",
            "Allergens=none declared|gluten|milk|egg|nuts, soy|sesame",
            "Storage=ambient|chilled 0-5 C|frozen -18 C|cool and dry",
            "Substitute=same brand other size|store brand|no substitute|nearest price",
        ),
    ),
    App(
        "Quillstone Legal",
        "Quill",
        "helping a law firm's staff find clauses in its precedent library",
        (
            "You are not a lawyer; you help staff find and compare precedent text.",
            "Quote clause numbers from the library exactly; never paraphrase a clause as if quoting.",
            "Matters marked privileged must not be discussed with users outside the matter team.",
        ),
        "Clause library index",
        (
            "Clause=4.2|7.1|9.3|11.4|12.2|14.1|17.5|21.3",
            "Topic=limitation of liability|indemnity|termination for convenience|governing law"
            "|confidentiality|assignment|force majeure",
            "Jurisdiction=England and Wales|New York|Delaware|Germany|Singapore",
            "Last reviewed=March 2023|July 2023|January 2024|May 2024|October 2024",
            "Owner=commercial team|disputes team|employment team|IP team",
            "Status=approved|approved with notes|under review|superseded",
        ),
    ),
    App(
        "Orbital Analytics",
        "Orbital SQL",
        "writing and explaining queries over the company's warehouse",
        (
            "Queries run on the read replica; never suggest statements that write.",
            "Tables ending in _pii need the analyst role; mention it when a query touches one.",
            "Prefer window functions to self-joins; explain each step of a long query.",
        ),
        "Warehouse tables",
        (
            "Table=events|sessions|orders|order_items|customers_pii|refunds|campaigns",
            "Rows=12 million|48 million|310 million|2.1 billion|640 thousand",
            "Partitioned by=event_date|created_at|order_date|none|region",
            "Owner=growth|finance|platform|marketing|support",
            "Refresh=streaming|hourly|daily at 02:00 UTC|weekly",
            "Key=event_id|session_id|order_id|customer_id|campaign_id",
        ),
    ),
    App(
        "Keel Engineering",
        "Keel Copilot",
        "an internal assistant for the platform engineering team",
        (
            "Runbooks live in the wiki under /runbooks; link to them rather than restating them.",
            "Never paste secrets or connection strings, even masked.",
            "When asked about an incident, state what is known, what is not, and who owns it.",
        ),
        "Services and owners",
        (
            "Service=checkout-api|ledger|search-indexer|notifier|auth-gateway|media-resizer",
            "Language=Go|Rust|Python|Kotlin|TypeScript",
            "Tier=tier 0|tier 1|tier 2|tier 3",
            "Store=PostgreSQL 15|Redis 7|Kafka|S3|Elasticsearch 8|DynamoDB",
            "On-call=payments rota|core rota|search rota|platform rota",
            "SLO=99.95 percent|99.9 percent|99.5 percent|best effort",
        ),
    ),
)

SIMPLE_FOLLOW_UPS = (
    "Thanks!",
    "Great, thank you.",
    "Can you make that shorter?",
    "Put that in a bullet list, please.",
    "Translate your answer into French.",
    "Gracias.",
    "Danke, das reicht.",
    "ok thanks",
    "Can you say that in one sentence?",
    "Perfect, that's all I needed.",
)
HARD_FOLLOW_UPS = (
    "And why does that hold?",
    "What would break first at ten times the load?",
    "Can you make the argument for the second step rigorous?",
    "How does that change if the network can partition between the two sites?",
    "What is the complexity of that, and can we do better?",
    "Walk me through the failure mode you mentioned, step by step.",
    "Which of those options would you choose for us, and what are the risks?",
    "¿Y por qué funciona eso?",
    "Und warum ist das so?",
    "为什么？",  # noqa: RUF001
)


def system_prompt(app: App, rng: random.Random, tokens: int) -> str:
    """The app's instructions and reference table, grown to ``tokens`` (as the sim counts)."""
    rules = [*app.rules, *rng.sample(COMMON_RULES, len(COMMON_RULES))]
    columns = [column.partition("=")[::2] for column in app.columns]
    head = (
        f"You are {app.assistant}, the assistant of {app.company} for {app.purpose}. "
        f"You speak for {app.company}: be accurate, brief and kind, and say plainly what you "
        "do not know. The rules below come first; the reference material after them is the "
        "only source of facts about our products and policies.\n\n## Rules\n"
        + "".join(f"{i}. {rule}\n" for i, rule in enumerate(rules, 1))
        + f"\n## Reference: {app.table}\n\n| ID | "
        + " | ".join(name for name, _ in columns)
        + " |\n|---|"
        + "---|" * len(columns)
        + "\n"
    )
    rows = []
    text = head
    for i in itertools.count(1):
        row = " | ".join(rng.choice(values.split("|")) for _, values in columns)
        rows.append(f"| {app.company[:2].upper()}-{1000 + i * 7} | {row} |\n")
        if i % 8 == 0:
            text = head + "".join(rows)
            if _text_tokens(text) >= tokens:
                break
    return text + (
        "\n## Style\nAnswer the question asked, then stop. Offer one next step at most. "
        f"If the user wants a person, tell them {app.company}'s team answers within one working day."
    )


@dataclass(frozen=True)
class Turn:
    """A request of a conversation: what it adds to the conversation, and its label."""

    messages: tuple[dict[str, Any], ...]
    label: str
    repeat: bool = False  # the previous request again, unchanged (nothing added)


@dataclass
class Conversation:
    id: int
    region: str
    hint: str  # how the client names the session: prompt_cache_key, x-session-id or none
    extras: dict[str, Any]  # tools, tool_choice, response_format: in every request
    turns: list[Turn]


def load_labelled(path: Path = LABELLED) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def cycle_shuffled(items: list[dict[str, Any]], rng: random.Random) -> Iterator[dict[str, Any]]:
    """Every item once in a random order, then again in another: records repeat evenly."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


class Workload:
    """Conversations of labelled requests, simple and hard at 80/20, built from a seed."""

    def __init__(self, records: list[dict[str, Any]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.prompts = [
            system_prompt(app, self.rng, self.rng.randrange(1_600, 3_000)) for app in APPS
        ]
        self.openers = {
            label: cycle_shuffled([r for r in records if r["label"] == label], self.rng)
            for label in ("simple", "hard")
        }
        # later turns: single user messages with nothing attached
        self.asks = {
            label: cycle_shuffled(
                [
                    r
                    for r in records
                    if r["label"] == label
                    and len(r["request"]["messages"]) == 1
                    and set(r["request"]) == {"model", "messages"}
                ],
                self.rng,
            )
            for label in ("simple", "hard")
        }
        self.follow_ups = {"simple": SIMPLE_FOLLOW_UPS, "hard": HARD_FOLLOW_UPS}

    def conversations(self, requests: int) -> list[Conversation]:
        hard = round(requests * HARD_SHARE)
        made = [
            *self._of_label("hard", hard),
            *self._of_label("simple", requests - hard),
        ]
        self.rng.shuffle(made)
        for i, conversation in enumerate(made):
            conversation.id = i
        return made

    def _of_label(self, label: str, requests: int) -> Iterator[Conversation]:
        rng = self.rng
        while requests > 0:
            record = next(self.openers[label])["request"]
            messages = record["messages"]
            extras = {k: v for k, v in record.items() if k not in ("model", "messages")}
            if messages[0]["role"] in ("system", "developer"):
                turns = [Turn(tuple(messages), label)]  # a pipeline: its own prompt, one shot
            else:
                system = {"role": "system", "content": rng.choice(self.prompts)}
                turns = [Turn((system, *messages), label)]
                for _ in range(rng.choices(TURNS, TURN_WEIGHTS)[0] - 1):
                    if rng.random() < 0.5:
                        ask = next(self.asks[label])["request"]["messages"][0]["content"]
                    else:
                        ask = rng.choice(self.follow_ups[label])
                    turns.append(Turn(({"role": "user", "content": ask},), label))
            with_repeats = []
            for turn in turns:
                with_repeats.append(turn)
                if rng.random() < REPEAT_RATE:
                    with_repeats.append(Turn((), label, repeat=True))
            with_repeats = with_repeats[:requests]
            requests -= len(with_repeats)
            region = REGIONS[0] if rng.random() < US_SHARE else REGIONS[1]
            hint = rng.choice(("prompt_cache_key", "x-session-id", "none"))
            yield Conversation(0, region, hint, extras, with_repeats)


# --- the replay --------------------------------------------------------------------------------


@dataclass
class Sent:
    """One request as sent and what the router and the upstream said about it."""

    conversation: int
    seq: int  # order of sending, over the whole replay
    label: str
    repeat: bool
    payload: dict[str, Any]
    status: int = 0
    error: str = ""
    tier: str = ""
    provider: str = ""
    model: str = ""
    endpoint: str = ""  # the simulator that answered (x-sim-name)
    degraded: str = ""
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    cost: float = 0.0  # x-modelroute-cost-usd
    eligible: int = 0  # prompt tokens a provider could have billed as cached (see the docstring)

    @property
    def upstream(self) -> Upstream:
        return UPSTREAMS[self.provider, self.model]


async def converse(
    http: aiohttp.ClientSession, url: str, conversation: Conversation, order: Iterator[int]
) -> list[Sent]:
    """The conversation's turns one after another, each answer joining it; stop at a failure."""
    history: list[dict[str, Any]] = []
    answer: dict[str, Any] | None = None
    payload: dict[str, Any] = {}
    sent = []
    headers = {"content-type": "application/json"}
    if conversation.hint == "x-session-id":
        headers["x-session-id"] = f"replay-{conversation.id}"
    for turn in conversation.turns:
        if not turn.repeat:
            if answer is not None:
                history.append(answer)
            history.extend(turn.messages)
            payload = {
                "model": MODEL,
                "messages": list(history),
                "max_tokens": MAX_TOKENS[turn.label],
                **conversation.extras,
            }
            if conversation.hint == "prompt_cache_key":
                payload["prompt_cache_key"] = f"replay-{conversation.id}"
        one = Sent(conversation.id, next(order), turn.label, turn.repeat, payload)
        sent.append(one)
        try:
            async with http.post(url, data=orjson.dumps(payload), headers=headers) as response:
                body = await response.read()
                got = response.headers
                one.status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            one.error = repr(exc)
            return sent
        if one.status != 200:
            one.error = body[:300].decode(errors="replace")
            return sent
        one.tier = got.get("x-modelroute-tier", "")
        one.provider = got.get("x-modelroute-provider", "")
        one.model = got.get("x-modelroute-model", "")
        one.endpoint = got.get("x-sim-name", "")
        one.degraded = got.get("x-modelroute-degraded", "")
        one.cost = float(got.get("x-modelroute-cost-usd", "nan"))
        data = orjson.loads(body)
        usage = data["usage"]
        one.prompt, one.completion = usage["prompt_tokens"], usage["completion_tokens"]
        one.cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        message = data["choices"][0]["message"]
        answer = {"role": "assistant", "content": message["content"]}
    return sent


async def replay(
    conversations: list[Conversation], routers: dict[str, int], users: int
) -> list[Sent]:
    """``users`` clients, each taking the next conversation when its last one ends."""
    queue = iter(conversations)
    order = itertools.count()
    done: list[list[Sent]] = []

    async def user(http: aiohttp.ClientSession) -> None:
        for conversation in queue:
            url = f"http://127.0.0.1:{routers[conversation.region]}/v1/chat/completions"
            done.append(await converse(http, url, conversation, order))

    connector = aiohttp.TCPConnector(limit=users * 2)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(user(http) for _ in range(users)))
    return [one for sent in sorted(done, key=lambda s: s[0].conversation) for one in sent]


# --- what it cost ---------------------------------------------------------------------------


def ideal_cached(sent: list[Sent], cache_of: Callable[[Sent], str]) -> list[int]:
    """Per request of ``sent`` (in order), its prompt tokens an ideal provider would bill as
    cached: the simulator's own accounting, with one cache per ``cache_of(request)``. As
    the replay is shorter than the TTL, nothing expires."""
    cache = _PrefixCache(max_blocks=1 << 24)
    return [_cached_tokens(cache, cache_of(one), _chat_pieces(one.payload), TTL) for one in sent]


@dataclass
class Figures:
    sent: list[Sent]
    seconds: float
    conversations: int
    tiered: float = 0.0
    tiered_usage: float = 0.0  # the same, priced here from usage
    all_gpt4o: float = 0.0
    perfect: float = 0.0
    hard_share: float = 0.0  # of the all-GPT-4o bill
    hard_output_share: float = 0.0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    eligible: int = 0
    cached_eligible: int = 0
    cached_beyond: int = 0
    eligible_requests: int = 0
    same_endpoint: float = 0.0  # of eligible requests: answered where the last one was
    classify_us: tuple[float, float, float] = (0.0, 0.0, 0.0)  # p50, p99, max
    endpoints: list[tuple[str, int, int, int]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def answered(self) -> list[Sent]:
        return [one for one in self.sent if one.status == 200]

    @property
    def failed(self) -> list[Sent]:
        return [one for one in self.sent if one.status != 200]

    @property
    def cached_share(self) -> float:
        return self.cached_eligible / self.eligible if self.eligible else 0.0

    def saving(self, cost: float) -> float:
        return 1 - cost / self.all_gpt4o if self.all_gpt4o else 0.0


def price(figures: Figures) -> None:
    ok = figures.answered  # each conversation's requests together, in order
    eligible = ideal_cached(ok, lambda one: f"{one.conversation}/{one.model}")
    for one, tokens in zip(ok, eligible, strict=True):
        one.eligible = tokens
    # The perfect router has a perfect cache too: one per model, that every request reaches.
    in_time = sorted(ok, key=lambda one: one.seq)
    perfect_cached = dict(
        zip(
            (one.seq for one in in_time),
            ideal_cached(in_time, lambda one: "flash" if one.label == "simple" else "gpt-4o"),
            strict=True,
        )
    )
    figures.tiered = sum(one.cost for one in ok)
    figures.tiered_usage = sum(
        one.upstream.bill(one.prompt, one.cached, one.completion) for one in ok
    )
    figures.all_gpt4o = sum(GPT4O.bill(one.prompt, 0, one.completion) for one in ok)
    figures.perfect = sum(
        FLASH.bill(one.prompt, perfect_cached[one.seq], one.completion)
        if one.label == "simple"
        else GPT4O.bill(one.prompt, 0, one.completion)
        for one in ok
    )
    hard = [one for one in ok if one.label == "hard"]
    if figures.all_gpt4o:
        figures.hard_share = (
            sum(GPT4O.bill(one.prompt, 0, one.completion) for one in hard) / figures.all_gpt4o
        )
        figures.hard_output_share = (
            sum(GPT4O.bill(0, 0, one.completion) for one in hard) / figures.all_gpt4o
        )
    figures.confusion = Counter((one.label, one.tier) for one in ok)
    figures.eligible = sum(one.eligible for one in ok)
    figures.cached_eligible = sum(min(one.cached, one.eligible) for one in ok)
    figures.cached_beyond = sum(max(0, one.cached - one.eligible) for one in ok)
    last: dict[tuple[int, str], str] = {}
    stayed = eligible_requests = 0
    for one in ok:
        key = (one.conversation, one.model)
        if one.eligible:
            eligible_requests += 1
            stayed += last.get(key) == one.endpoint
        last[key] = one.endpoint
    figures.eligible_requests = eligible_requests
    figures.same_endpoint = stayed / eligible_requests if eligible_requests else 0.0


def classifier_timing(payloads: list[dict[str, Any]]) -> tuple[float, float, float]:
    """p50, p99 and max of one classify() call, in microseconds, over passes of ``payloads``
    (at least CLASSIFY_SAMPLES calls, so the p99 is not a handful of samples)."""
    if not payloads:
        return 0.0, 0.0, 0.0
    for payload in payloads:  # warm-up
        classify(payload)
    clock = time.perf_counter_ns
    samples = []
    for _ in range(-(-CLASSIFY_SAMPLES // len(payloads))):
        for payload in payloads:
            start = clock()
            classify(payload)
            samples.append((clock() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)], samples[-1]


def router_metrics(ports: list[int]) -> dict[str, float]:
    """Sums over the routers of the cost, cached-token and tier-decision counters."""
    wanted = {
        "modelroute_cost_usd_total": "cost",
        'direction="cached_input"': "cached_input",
        "modelroute_tier_decisions_total": "decisions",
    }
    totals = dict.fromkeys(wanted.values(), 0.0)
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            for needle, name in wanted.items():
                if needle in line:
                    totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


# --- the report -----------------------------------------------------------------------------------


def usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 10 else f"${value:,.4f}"


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def tables(f: Figures, command: str) -> str:
    """The Markdown for the README: cost, confusion matrix, prompt cache, classifier."""
    ok = f.answered
    per_k = 1000 / len(ok) if ok else 0.0
    labels = Counter(one.label for one in ok)
    mean_prompt = {
        label: statistics.fmean([one.prompt for one in ok if one.label == label] or [0])
        for label in ("simple", "hard")
    }
    share = {
        (label, tier): f.confusion[label, tier] / (labels[label] or 1)
        for label in ("simple", "hard")
        for tier in TIER_NAMES
    }
    lines = [
        f"`{command}`: {len(ok):,} requests in {f.conversations:,} conversations "
        f"({labels['simple']:,} simple, {labels['hard']:,} hard; "
        f"{sum(one.repeat for one in ok)} sent twice), two regions, {len(SIMS)} simulated "
        f"endpoints. Mean prompt {mean_prompt['simple']:,.0f} tokens (simple), "
        f"{mean_prompt['hard']:,.0f} (hard); answers {MAX_TOKENS['simple']} and "
        f"{MAX_TOKENS['hard']} tokens (`max_tokens`).",
        "",
        "| route | cost (USD) | per 1,000 requests | saving vs all GPT-4o |",
        "|---|---:|---:|---:|",
        f"| all GPT-4o (the same usage at 2.50/10.00) | {usd(f.all_gpt4o)} "
        f"| {usd(f.all_gpt4o * per_k)} | — |",
        f"| tiered `auto` (economy Flash, standard V4 Pro, premium GPT-4o) | {usd(f.tiered)} "
        f"| {usd(f.tiered * per_k)} | {f.saving(f.tiered):.1%} |",
        f"| perfect router (hard → GPT-4o, simple → Flash, every cacheable prefix cached) "
        f"| {usd(f.perfect)} | {usd(f.perfect * per_k)} | {f.saving(f.perfect):.1%} |",
        "",
        f"Hard requests are {labels['hard'] / (len(ok) or 1):.0%} of the requests but "
        f"{f.hard_share:.0%} of the all-GPT-4o bill: {f.hard_output_share:.0%} for their "
        f"{MAX_TOKENS['hard']}-token answers, {f.hard_share - f.hard_output_share:.0%} for their "
        f"prompts. A perfect router still sends them to GPT-4o, so routing can save at most "
        f"{1 - f.hard_share:.0%}; the perfect router's {f.saving(f.perfect):.0%} is that less the "
        "simple requests' Flash bill. Only Flash has a cached price in the issue's list: the "
        "other models, and the all-GPT-4o baseline, bill cached tokens at their input price.",
        "",
        "| label \\ tier | economy | standard | premium |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | "
            + " | ".join(
                f"{f.confusion[label, tier]:,} ({share[label, tier]:.1%})" for tier in TIER_NAMES
            )
            + " |"
            for label in ("simple", "hard")
        ),
        "",
        f"Targets (issue 11): hard → premium {share['hard', 'premium']:.1%} (≥ 95%: "
        f"{met(share['hard', 'premium'] >= 0.95)}), hard → economy "
        f"{share['hard', 'economy']:.1%} (≤ 2%: {met(share['hard', 'economy'] <= 0.02)}), "
        f"simple → premium {share['simple', 'premium']:.1%} "
        f"(≤ 10%: {met(share['simple', 'premium'] <= 0.10)}).",
        "",
        "| prompt cache | tokens |",
        "|---|---:|",
        f"| eligible: repeated-prefix prompt tokens ({f.eligible_requests:,} requests) "
        f"| {f.eligible:,} |",
        f"| of those, billed as cached (target ≥ 95%: {met(f.cached_share >= 0.95)}) "
        f"| {f.cached_eligible:,} ({f.cached_share:.1%}) |",
        f"| cached beyond them (application prompts shared across conversations) "
        f"| {f.cached_beyond:,} |",
        "",
        f"{f.same_endpoint:.1%} of the eligible requests were answered by the endpoint that "
        "answered the conversation's previous request to the same model.",
        "",
        "| endpoint | chat requests | prompt tokens | of them cached |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {requests:,} | {prompt:,} | {cached:,} "
            f"({cached / prompt if prompt else 0:.0%}) |"
            for name, requests, prompt, cached in f.endpoints
        ),
        "",
        f"Classifier (`classify()` in-process, passes over the {len(ok):,} payloads replayed): "
        f"p50 {f.classify_us[0]:.0f} µs, p99 {f.classify_us[1]:.0f} µs, "
        f"max {f.classify_us[2]:.0f} µs (target p99 < 1 ms: {met(f.classify_us[1] < 1000)}).",
    ]
    return "\n".join(lines) + "\n"


def report(f: Figures, command: str) -> None:
    print(tables(f, command))
    ok = f.answered
    print(f"replayed in {f.seconds:.1f} s ({len(f.sent) / f.seconds:.0f} requests/s)")
    if f.seconds > TTL:
        print(f"note: the replay outlasted the {TTL:g} s TTL; eligible tokens are overstated")
    degraded = Counter(one.degraded for one in ok if one.degraded)
    if degraded:
        print(f"degraded answers: {dict(degraded)}")
    m = f.metrics
    print(
        f"check: x-modelroute-cost-usd sums to {usd(f.tiered)}, usage priced here "
        f"{usd(f.tiered_usage)}, routers' modelroute_cost_usd_total {usd(m['cost'])}; cached "
        f"tokens in usage {sum(one.cached for one in ok):,}, routers' cached_input "
        f"{m['cached_input']:,.0f}; tier decisions {m['decisions']:,.0f}"
    )
    for one in f.failed[:5]:
        print(f"FAILED: conversation {one.conversation}: {one.status} {one.error}")


# --- the command ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests to replay")
    parser.add_argument("--users", type=int, default=32, help="conversations in flight at once")
    parser.add_argument("--seed", type=int, default=11, help="seed of the workload")
    parser.add_argument("--out", type=Path, help="also write the Markdown tables here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(
        ["python", "benchmarks/replay.py", *(sys.argv[1:] if argv is None else argv)]
    )
    conversations = Workload(load_labelled(), args.seed).conversations(args.requests)
    with tempfile.TemporaryDirectory(prefix="modelroute-replay-") as tmp:
        try:
            figures = run(Path(tmp), args, conversations)
        except RuntimeError as exc:
            print(f"replay: could not start: {exc}", file=sys.stderr)
            return 2
    figures.classify_us = classifier_timing([one.payload for one in figures.answered])
    report(figures, command)
    if args.out is not None:
        args.out.write_text(tables(figures, command))
    verdict = "FAIL" if figures.failed else "PASS"
    print(
        f"replay: {verdict} requests={len(figures.sent)} failed={len(figures.failed)} "
        f"tiered_usd={figures.tiered:.4f} all_gpt4o_usd={figures.all_gpt4o:.4f} "
        f"perfect_usd={figures.perfect:.4f} cached_share={figures.cached_share:.4f} "
        f"classifier_p99_us={figures.classify_us[1]:.1f}",
        flush=True,
    )
    return 1 if figures.failed else 0


def run(workdir: Path, args: argparse.Namespace, conversations: list[Conversation]) -> Figures:
    """Start the simulators and a router per region, replay, read their figures, stop them."""
    cpus = sorted(os.sched_getaffinity(0))
    router_cpu, sim_cpu = procstat.Placement(cpus[-1]), procstat.Placement(cpus[0])
    started: list[services.Service] = []
    try:
        ports = {}
        for sim in SIMS:
            service = services.start_sim(workdir, sim_cpu, sim.name, sim.options())
            started.append(service)
            services.sim_admin(
                service.port, "/sim/behaviour", {"name": sim.name, "region": sim.region}
            )
            ports[sim] = service.port
        config = workdir / "route.yaml"
        config.write_text(yaml.safe_dump(manifest(ports), sort_keys=False))
        secrets = services.write_secrets(workdir, ENDPOINTS_PER_REGION)
        routers = {}
        for region in REGIONS:
            router = services.start_router(
                workdir, router_cpu, config, secrets, f"router-{region}", region
            )
            started.append(router)
            routers[region] = router.port
        began = time.perf_counter()
        sent = asyncio.run(replay(conversations, routers, args.users))
        figures = Figures(sent, time.perf_counter() - began, len(conversations))
        for sim, port in ports.items():
            stats = services.sim_admin(port, "/sim/stats")
            chats = stats["by_path"].get("/v1/chat/completions", 0)
            figures.endpoints.append(
                (sim.name, chats, stats["prompt_tokens"], stats["cached_tokens"])
            )
        figures.metrics = router_metrics(list(routers.values()))
    finally:
        for service in reversed(started):
            service.stop()
    price(figures)
    return figures


if __name__ == "__main__":
    sys.exit(main())
