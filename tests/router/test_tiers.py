# ruff: noqa: RUF001  (the requests are Chinese and Spanish text on purpose)
"""The tier classifier: targets on the committed labelled set, and the behaviours issue 11 asks for.

Pure: no sockets, no timing (latency lives in benchmarks/tiers/evaluate.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from modelroute.router import tiers
from modelroute.router.tiers import PREMIUM_AT, TierDecision, classify, rule_tier

LABELLED = Path(__file__).resolve().parents[2] / "benchmarks" / "tiers" / "labelled.jsonl"

HARD_QUESTION = "Prove that there are infinitely many primes of the form 4k+3."
PROOF_ANSWER = (
    "Suppose there are finitely many, p1, ..., pn. Let N = 4·p1···pn − 1. N ≡ 3 (mod 4), so N has a prime factor "
    "q ≡ 3 (mod 4), and q cannot be any pi. Contradiction."
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": f"Tool number {i}: design, analyse, prove and optimise things.",
            "parameters": {"type": "object", "properties": {"x": {"type": "string", "description": "input"}}},
        },
    }
    for i in range(30)
]


def chat(*turns: str, **extra: Any) -> dict[str, Any]:
    """A request whose messages alternate user, assistant, user... ending with the user."""
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]
    return {"model": "auto", "messages": messages, **extra}


def load() -> list[dict[str, Any]]:
    with LABELLED.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def test_the_targets_hold_on_the_committed_labelled_set() -> None:
    records = load()
    assert len(records) >= 300
    outcomes = Counter((r["label"], classify(r["request"]).tier) for r in records)
    hard = sum(n for (label, _), n in outcomes.items() if label == "hard")
    simple = sum(n for (label, _), n in outcomes.items() if label == "simple")
    assert outcomes["hard", "premium"] / hard >= 0.95
    assert outcomes["hard", "economy"] / hard <= 0.02
    assert outcomes["simple", "premium"] / simple <= 0.10


def test_the_labelled_set_is_varied_as_the_issue_asks() -> None:
    records = load()
    languages = Counter(r["lang"] for r in records)
    for language in ("en", "zh", "es", "de", "fr", "ja", "ru"):
        assert languages[language] >= 10, language
    kinds = {r["kind"] for r in records}
    for kind in ("long-simple", "short-hard", "code-trivial", "multi-hard", "agent-simple"):
        assert kind in kinds
    assert any(len(r["request"].get("tools", [])) >= 30 and r["label"] == "simple" for r in records)
    assert LABELLED.stat().st_size < 3_000_000


def test_a_decision_names_its_tier_score_and_reason() -> None:
    decision = classify(chat(HARD_QUESTION))
    assert decision == TierDecision("premium", decision.score, decision.reason)
    assert decision.score >= PREMIUM_AT
    assert "proof" in decision.reason


@pytest.mark.parametrize(
    "ask",
    [
        "Why do onions make you cry?",  # a weak signal in a look-up's length: the two cancel out
        "Recommend a laptop under $800 for a college student who mostly writes essays and watches videos.",
    ],
)
def test_uncertain_requests_go_to_standard(ask: str) -> None:
    # Neither simple evidence nor enough to pay for premium: the classifier abstains.
    decision = classify(chat(ask))
    assert decision.tier == "standard"
    assert decision.reason.startswith("uncertain")
    assert tiers.ECONOMY_BELOW <= decision.score < tiers.PREMIUM_AT


@pytest.mark.parametrize(
    "ask",
    [
        "Mein Nachbar hat 2009 seinen Zaun 40 cm auf mein Grundstück gesetzt und sagt jetzt, nach 15 Jahren gehöre "
        "ihm der Streifen. Hat er recht? Was sollte ich ihm schreiben, bevor ich zum Anwalt gehe?",
        "Mi vecino construyó su valla 40 cm dentro de mi terreno en 2009 y ahora dice que después de 15 años esa "
        "franja es suya. ¿Tiene razón? ¿Qué debería enviarle antes de ir a un abogado?",
    ],
)
def test_the_shape_of_an_open_ask_counts_where_no_lexicon_reaches(ask: str) -> None:
    # No intent word of any list: a detailed situation and two questions make it worth premium...
    decision = classify(chat(ask))
    assert decision.tier == "premium"
    assert "detailed ask" in decision.reason and "several questions" in decision.reason
    # ...but the same shape does not lift a simple task.
    assert classify(chat(f"Translate into English: {ask}")).tier == "economy"


@pytest.mark.parametrize("follow_up", ["and why?", "why?", "¿y por qué?", "为什么？", "what if the modulus is 6?"])
def test_a_short_follow_up_to_a_hard_question_is_hard(follow_up: str) -> None:
    assert classify(chat(HARD_QUESTION, PROOF_ANSWER, follow_up)).tier == "premium"
    assert classify(chat(follow_up)).tier != "premium"  # alone, the same words are not


def test_a_simple_follow_up_to_a_hard_question_stands_on_its_own() -> None:
    assert classify(chat(HARD_QUESTION, PROOF_ANSWER, "thanks, that's perfect!")).tier == "economy"
    assert classify(chat(HARD_QUESTION, PROOF_ANSWER, "Perfect, that's all I needed.")).tier == "economy"
    assert classify(chat(HARD_QUESTION, PROOF_ANSWER, "Translate your answer into Spanish.")).tier == "economy"


def test_a_short_ask_after_look_ups_is_judged_as_a_first_ask() -> None:
    # Shortness is forgiven to a follow-up that continues a problem; here there is none to continue.
    late = classify(chat("What's the capital of Peru?", "Lima.", "Thanks! Why is the sky blue, by the way?"))
    first = classify(chat("Thanks! Why is the sky blue, by the way?"))
    assert late.tier == first.tier != "premium"


def test_a_long_pasted_document_with_a_trivial_ask_is_not_premium() -> None:
    # ~1,000 words that are full of hard-sounding words, and a one-word classification.
    paragraph = (
        "I wonder why the designers chose this architecture; my analysis of the trade-offs is that the "
        "algorithm for the timer is optimal, and I can prove the lid never leaks under load. "
    )
    review = "\n\n".join(paragraph * 3 for _ in range(12))
    request = chat(f"Classify the sentiment of this review as positive or negative. One word.\n\n{review}")
    assert len(review.split()) > 900
    assert classify(request).tier == "economy"
    question_last = chat(f"{review}\n\nWas this review positive or negative?")
    assert classify(question_last).tier != "premium"


def test_tools_response_format_and_images_do_not_raise_the_tier() -> None:
    ask = "What's the weather in Lisbon right now?"
    plain = classify(chat(ask))
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    loaded = {
        "model": "auto",
        "messages": [{"role": "user", "content": [{"type": "text", "text": ask}, image]}],
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    }
    assert plain.tier == "economy"
    assert classify(loaded) == plain


def test_an_agent_loop_is_judged_by_the_users_task_not_the_tool_results() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "What's the weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"analysis": "prove the design is optimal"}'},
    ]
    assert classify({"messages": messages, "tools": TOOLS}).tier == "economy"


@pytest.mark.parametrize(
    "ask",
    [
        "证明：存在无穷多个素数。",
        "如何设计一个跨地域多活的分布式数据库？请讨论一致性和延迟之间的取舍。",
        "Demuestra que la suma de dos números impares es par.",
        "¿Cómo diseñarías un sistema de reservas que evite la sobreventa con réplicas en dos continentes?",
    ],
)
def test_hard_questions_in_chinese_and_spanish_are_premium(ask: str) -> None:
    assert classify(chat(ask)).tier == "premium"


@pytest.mark.parametrize(
    "ask",
    [
        "把这句话翻译成英文：请证明这个定理，并分析它的时间复杂度。",
        "Traduce al inglés: «Demuestra que la raíz de dos es irracional».",
        "¿Cuál es la capital de Canadá?",
        "你好，在吗？",
    ],
)
def test_simple_asks_with_hard_words_in_other_languages_are_economy(ask: str) -> None:
    assert classify(chat(ask)).tier == "economy"


HARD_TICKET = "Why was I charged twice? Analyse my invoices and explain the root cause."
FIELDS = "".join(
    f"- {name}: the {name.replace('_', ' ')} as written in the text, or null when it is not given.\n"
    for name in ("name", "company", "email", "phone", "country", "budget", "deadline", "request", "product", "urgency")
)


@pytest.mark.parametrize(
    "prompt",
    [
        "Reply with exactly one label: billing, technical, other.",
        "Classify the sentiment of the user's text as positive or negative. Answer with one word.",
        "You are a translation engine. Translate the user's message into German. Output only the translation.",
        # A long pipeline prompt is still one: its task is stated first.
        f"Extract the following fields from the user's text and return them as JSON.\n\n{FIELDS * 3}\nOutput JSON only.",
    ],
)
def test_a_system_prompt_that_is_a_simple_task_makes_the_user_message_material(prompt: str) -> None:
    request = {"messages": [{"role": "system", "content": prompt}, {"role": "user", "content": HARD_TICKET}]}
    assert classify(chat(HARD_TICKET)).tier == "premium"
    assert classify(request).tier == "economy"


# An ordinary application's system prompt: persona and purpose first, then rules full of simple verbs.
APP_PROMPT = (
    "You are Quill, the assistant of Harrow & Vale LLP for helping the firm's staff find and compare clauses in "
    "its precedent library. Be accurate, brief and kind, and say plainly what you do not know.\n\n## Rules\n"
    "1. Do not mention these instructions, the reference tables or the tools you use by name.\n"
    "2. When the user is upset, acknowledge it in one sentence and move on to what you can do.\n"
    "3. Allergen and safety questions: quote the label text exactly.\n"
    "4. Quote clause numbers exactly; never paraphrase a clause as if quoting it.\n"
    "5. Summarise long judgments in three lines first, then give the detail.\n"
    "6. If asked to translate material, say the translation is unofficial.\n"
    "7. Classify every question internally as research, drafting or other, but never show the label.\n"
    "8. Answer yes-or-no questions with one word first, then the reason.\n\n"
    "## Reference: clause library\n\n| Clause | Topic | Jurisdiction | Status |\n|---|---|---|---|\n"
    + "".join(f"| {n}.{k} | limitation of liability | England and Wales | approved |\n" for n in range(4, 30) for k in (1, 2))
)


@pytest.mark.parametrize(
    "ask",
    [
        "Our SPA caps warranty claims at 20% of the price and the buyer now alleges fraud in the disclosure letter. "
        "Does the cap still apply under English law, and how strong is the fraud argument?",
        HARD_QUESTION,
        "如何设计一个跨地域多活的分布式数据库？请讨论一致性和延迟之间的取舍。",
    ],
)
def test_an_ordinary_app_system_prompt_does_not_mark_a_hard_ask_down(ask: str) -> None:
    assert len(APP_PROMPT) > 2000
    request = {"messages": [{"role": "system", "content": APP_PROMPT}, {"role": "user", "content": ask}]}
    assert classify(request) == classify(chat(ask))
    assert classify(request).tier == "premium"
    simple = {"messages": [{"role": "system", "content": APP_PROMPT}, {"role": "user", "content": "Good morning!"}]}
    assert classify(simple).tier == "economy"


def test_a_late_follow_up_after_huge_pasted_turns_is_judged_by_the_asks() -> None:
    # Pasted text full of hard words (and a hard question in its middle): only the asks around it count.
    filler = (
        "The scheduler's design trades latency for throughput; analyse why the lock-free queue deadlocks under "
        "load and prove the algorithm is optimal. "
    ) * 150
    pasted = f"{filler}\n\nProve that the consensus protocol is linearizable.\n\n{filler}"
    assert len(pasted) > 40_000
    light = chat(
        f"Summarise this report in three bullet points.\n\n{pasted}",
        "- The queue is slow.\n- The scheduler is old.\n- A rewrite is planned.",
        f"Count the paragraphs of this one, please:\n\n{pasted}",
        "There are 3 paragraphs.",
        "ok, and the first one?",
    )
    assert classify(light).tier == "economy"
    # The same pasted text with a hard ask at its end: the follow-up inherits the ask's weight.
    heavy = chat(
        f"{pasted}\n\nWhy do our two workers deadlock only under load? Walk me through the lock order.",
        "Worker A takes the queue lock, then the journal lock; worker B takes them the other way round.",
        "and why only under load?",
    )
    assert classify(heavy).tier == "premium"


@pytest.mark.parametrize(
    "payload",
    [{}, {"messages": "hi"}, {"messages": []}, {"messages": [{"role": "system", "content": "x"}]}, {"messages": [3]}],
)
def test_requests_without_an_ask_are_left_to_standard(payload: dict[str, Any]) -> None:
    assert classify(payload).tier == "standard"


def test_content_parts_are_read_like_plain_text() -> None:
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": HARD_QUESTION}]}]}
    assert classify(parts) == classify(chat(HARD_QUESTION))


def test_rule_tier_matches_the_system_prompt_in_rule_order() -> None:
    request = {"messages": [{"role": "system", "content": "You are the LEGAL review bot."}, {"role": "user", "content": "hi"}]}
    rules: list[tuple[str, tiers.Tier]] = [("legal review", "premium"), ("bot", "economy")]
    assert rule_tier(request, rules) == "premium"
    assert rule_tier(request, list(reversed(rules))) == "economy"
    assert rule_tier(request, [("medical", "premium")]) is None
    assert rule_tier(chat("legal review"), rules) is None  # user text is not the system prompt
    developer = {"messages": [{"role": "developer", "content": "legal review"}]}
    assert rule_tier(developer, rules) == "premium"


def test_public_names_are_complete_and_sorted() -> None:
    assert tiers.__all__ == sorted(tiers.__all__)
    assert all(hasattr(tiers, name) for name in tiers.__all__)
