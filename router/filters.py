"""Which targets of a chain can serve this request at all, before any call.

The model registry (``providers[].models``) says what each upstream model
accepts: its context window, its output limit, its capabilities. A request
that needs more than a target offers — a prompt plus ``max_tokens`` over the
window, tools for a model without tools, an image for a text-only model, a
``json_schema`` response format, a reasoning effort — skips that target, and
so does a target whose worst-case cost is over the request's ceiling
(``x-modelroute-max-cost-usd`` or the model's ``maxCostUSD``). Skipping is
cheaper than a failed call and clearer than the upstream's 400: the answer's
``x-modelroute-skipped`` header names each skipped target and why.

Prompt size is estimated without a tokenizer (:mod:`.tokens`): a filter is a
guard against certain failure, not an exact count, and an upstream that
still answers ``context_length_exceeded`` moves the request on (see
:func:`context_exceeded`). Routes whose targets declare nothing, with no
ceiling, are not screened at all (``Route.checked``): the feature costs them
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelroute.router.accept import Call
from modelroute.router.table import Route, Target
from modelroute.router.tokens import estimate_tokens

# Output assumed for the cost ceiling when neither the request nor the registry
# bounds it: a long answer, so a ceiling is not passed by accident.
DEFAULT_OUTPUT_ALLOWANCE = 4096
_CONTEXT_MARKERS = (
    b"context_length_exceeded",
    b"maximum context length",
    b"context window",
    b"context length",
    b"too many tokens",
    b"prompt is too long",
    b"input is too long",
)


@dataclass(frozen=True, slots=True)
class Needs:
    """What one request requires of a target."""

    prompt_tokens: int
    max_output: int | None  # the client's max_tokens / max_completion_tokens
    capabilities: frozenset[str]


@dataclass(slots=True)
class Screening:
    excluded: set[int] = field(default_factory=set)  # chain positions not to try
    skipped: list[str] = field(default_factory=list)  # "provider/model=reason"
    cheapest: float | None = None  # lowest worst-case cost seen, USD


def needs_of(call: Call, body: bytes) -> Needs:
    payload = call.payload
    if isinstance(payload.get("messages"), list) or "prompt" in payload or "input" in payload:
        prompt = estimate_tokens(payload)
    else:  # a large body parsed at its top level only: count its bytes instead
        prompt = len(body) // 4
    wanted: set[str] = set()
    if payload.get("tools") or payload.get("functions"):
        wanted.add("tools")
    response_format = payload.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        wanted.add("jsonSchema")
    if payload.get("reasoning_effort") is not None or payload.get("reasoning") is not None:
        wanted.add("reasoning")
    if _has_image(payload.get("messages"), body):
        wanted.add("vision")
    output = payload.get("max_completion_tokens")
    if not isinstance(output, int) or isinstance(output, bool):
        output = payload.get("max_tokens")
    max_output = output if isinstance(output, int) and not isinstance(output, bool) else None
    return Needs(prompt, max_output, frozenset(wanted))


def _has_image(messages: Any, body: bytes) -> bool:
    if not isinstance(messages, list):
        return b'"image_url"' in body or b'"input_image"' in body
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                    return True
    return False


def worst_case_cost(target: Target, needs: Needs) -> float:
    """USD if the whole prompt is billed uncached and the output runs to its limit."""
    output = needs.max_output or target.max_output or DEFAULT_OUTPUT_ALLOWANCE
    return needs.prompt_tokens * target.input_price + output * target.output_price


def screen(route: Route, needs: Needs, ceiling: float | None) -> Screening:
    """The targets of ``route`` this request must not try, and why."""
    result = Screening()
    for index, target in enumerate(route.targets):
        reason = _unfit(target, needs)
        if reason is None and ceiling is not None and target.priced:
            cost = worst_case_cost(target, needs)
            if result.cheapest is None or cost < result.cheapest:
                result.cheapest = cost
            if cost > ceiling:
                reason = "cost-ceiling"
        if reason is not None:
            result.excluded.add(index)
            result.skipped.append(f"{target.provider}/{target.model}={reason}")
    return result


def _unfit(target: Target, needs: Needs) -> str | None:
    if target.capabilities is not None:
        missing = needs.capabilities - target.capabilities
        if missing:
            return _CAPABILITY_REASONS[min(missing)]
    if target.context_window is not None:
        wanted = needs.prompt_tokens + (needs.max_output or 0)
        if wanted > target.context_window:
            return "context-window"
    return None


_CAPABILITY_REASONS = {
    "jsonSchema": "json-schema",
    "reasoning": "reasoning",
    "tools": "tools",
    "vision": "vision",
}


def context_exceeded(status: int, body: bytes) -> bool:
    """Whether an upstream's 4xx says the prompt did not fit its context window."""
    if status not in (400, 413, 422):
        return False
    lowered = body[:4096].lower()
    return any(marker in lowered for marker in _CONTEXT_MARKERS)
