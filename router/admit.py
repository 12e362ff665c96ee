"""The admit stage: rate limits and budgets, before a request costs anything.

For each request it works out which of the route's rate limits and budgets
it counts against (its client key's name, its model), takes one request and
its worst-case tokens from every rate limit, and reserves its worst-case cost
against every budget, each all or none (:mod:`.state.shared` decides where:
Redis, or this router's own state). The worst case is the estimated prompt
plus ``max_tokens`` — or, when the client sets none, the model's
``outputAllowance``, which is then sent upstream as ``max_tokens`` so the
answer cannot cost more than was reserved — at the dearest target the
request may reach. When less is left than that and the budget allows it,
``max_tokens`` is lowered to what is left instead of refusing.

When the request completes, :meth:`Gate.release` settles the real cost
(from ``usage``) and corrects the tokens taken.

A route with no budgets and no rate limits gets no Gate; a request no
budget or limit applies to returns from :meth:`Gate.admit` at once.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from modelroute.router.errors import OverLimit
from modelroute.router.filters import needs_of
from modelroute.router.metrics import Metrics
from modelroute.router.state.ledger import Charge, Grant, to_nano
from modelroute.router.state.limiter import Allowed, Take
from modelroute.router.state.shared import LOCAL, Placed, SharedState
from modelroute.router.state.windows import window_bounds
from modelroute.router.table import Route
from modelroute.spec.model import Budget, ClientRateLimit, RouteSpec

Headers = list[tuple[bytes, bytes]]
MARGIN = 1.1  # prompt estimates run ~10% either way of real tokenizers: reserve above
_RID_PREFIX = os.urandom(4).hex()  # this process's: reservation ids are unique across pods
_rids = itertools.count()


@dataclass(slots=True)
class Hold:
    """What one request holds until it completes."""

    rid: str
    charges: tuple[Charge, ...] = ()
    placed: Placed = LOCAL
    reserved: int = 0  # nano-USD
    passed: tuple[Charge, ...] = ()  # budgets spent already that a degraded request reports to
    takes: tuple[Take, ...] = ()
    minute: int = 0
    limit_placed: Placed = LOCAL
    tokens: int = 0  # tokens taken from each tokens limit
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Worst:
    prompt_tokens: int
    output_tokens: int
    input_price: float  # USD per token, the dearest target's
    output_price: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def cost(self) -> int:
        return to_nano(
            self.prompt_tokens * self.input_price + self.output_tokens * self.output_price
        )


_OUTPUT_LIMITS = ("max_completion_tokens", "max_tokens")


def _output_limits(payload: dict[str, Any]) -> list[int]:
    """The output limits a client set, as positive integers (any other value is no
    limit an upstream can be trusted to read as one)."""
    values = [payload.get(key) for key in _OUTPUT_LIMITS]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]


def reset_text(ms: int) -> str:
    """OpenAI's spelling of a reset time: 20ms, 1s, 6m0s."""
    if ms < 1000:
        return f"{max(ms, 1)}ms"
    minutes, seconds = divmod(math.ceil(ms / 1000), 60)
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def ratelimit_headers(takes: tuple[Take, ...], allowed: Allowed) -> Headers:
    """x-ratelimit-{limit,remaining,reset}-{requests,tokens}: the tightest of each kind."""
    out: Headers = []
    for kind in ("requests", "tokens"):
        best: tuple[int, int, int] | None = None
        for take, remaining, reset in zip(takes, allowed.remaining, allowed.reset_ms, strict=True):
            if take.kind == kind and (best is None or remaining < best[1]):
                best = (take.limit, remaining, reset)
        if best is not None:
            out += [
                (b"x-ratelimit-limit-" + kind.encode(), b"%d" % best[0]),
                (b"x-ratelimit-remaining-" + kind.encode(), b"%d" % best[1]),
                (b"x-ratelimit-reset-" + kind.encode(), reset_text(best[2]).encode()),
            ]
    return out


class Gate:
    """Budgets and rate limits of one routing table."""

    def __init__(self, spec: RouteSpec, shared: SharedState, metrics: Metrics) -> None:
        self.spec = spec
        self.shared = shared
        self.metrics = metrics
        self.budgets = spec.budgets
        self.limits = spec.rate_limits
        self.allowance = {model.name: model.output_allowance for model in spec.models}
        # A reservation outlives the longest a request may take (every attempt to its
        # total timeout), so it expires only when its router is gone.
        resilience = spec.resilience
        self._ttl = resilience.timeouts.total * (1 + resilience.retries.attempts) + 10.0

    def _budgets_for(self, client: str, model: str) -> list[Budget]:
        return [
            b
            for b in self.budgets
            if (b.client is None or b.client == client) and (b.model is None or b.model == model)
        ]

    def _limits_for(self, client: str, model: str) -> list[ClientRateLimit]:
        return [
            r
            for r in self.limits
            if (r.client is None or r.client == client) and (r.model is None or r.model == model)
        ]

    def worst(
        self,
        call_payload: dict[str, Any],
        body: bytes,
        call: Any,
        route: Route,
        excluded: set[int],
        model: str,
    ) -> Worst:
        needs = needs_of(call, body)
        targets = [t for i, t in enumerate(route.targets) if i not in excluded] or list(
            route.targets
        )
        # The larger of the two limits: upstreams differ in which one they read.
        output = max(_output_limits(call_payload), default=None)
        if output is None:
            output = self.allowance.get(model, 4096)
            limits = [t.max_output for t in targets if t.max_output is not None]
            if limits:
                output = min(output, max(limits))
        return Worst(
            math.ceil(needs.prompt_tokens * MARGIN),
            output,
            max((t.input_price for t in targets), default=0.0),
            max((t.output_price for t in targets), default=0.0),
        )

    async def admit(self, ex: Any, client: str, model: str) -> Hold | None:
        """Take and reserve for ``ex`` (a proxy Exchange); None when nothing applies.
        Raises OverLimit; may lower ``max_tokens`` or move ``ex`` to a cheaper model."""
        budgets = self._budgets_for(client, model)
        limits = self._limits_for(client, model)
        if not budgets and not limits:
            return None
        call = ex.call
        if call.layout is not None:  # a large body: parse it whole, max_tokens may change
            call.payload = orjson.loads(ex.request.body)
            call.layout = None
        worst = self.worst(call.payload, ex.request.body, call, ex.route, ex.excluded, model)
        # The reservation's id is the router's own: x-request-id is the client's to choose,
        # and requests sharing one would replace each other's reservation and settle once.
        # (It starts with the request id, cut short, so a reservation in Redis can be
        # traced to its request.)
        rid = f"{ex.request_id[:64].decode('latin-1')}/{_RID_PREFIX}{next(_rids)}"
        hold = Hold(rid=rid)
        if limits:
            await self._take(hold, limits, client, worst)
        if budgets:
            try:
                await self._reserve(ex, hold, budgets, worst, client)
            except BaseException as exc:
                if isinstance(exc, OverLimit):  # the rate limits it passed go with it
                    exc.headers += hold.headers
                await self._return_tokens(hold)
                raise
        ex.notes += hold.headers
        self.shared.holds += 1
        return hold

    async def _take(
        self, hold: Hold, limits: list[ClientRateLimit], client: str, worst: Worst
    ) -> None:
        takes: list[Take] = []
        prefix = self.shared.prefix
        for rule in limits:
            base = f"{prefix}l:{rule.name}:{client}"
            if rule.requests_per_minute is not None:
                takes.append(Take(base + ":r", rule.requests_per_minute, 1, "requests", rule.name))
            if rule.tokens_per_minute is not None:
                takes.append(
                    Take(base + ":t", rule.tokens_per_minute, worst.tokens, "tokens", rule.name)
                )
        result, placed = await self.shared.take(tuple(takes))
        if isinstance(result, Allowed):
            hold.takes, hold.minute, hold.limit_placed = tuple(takes), result.minute, placed
            hold.tokens = worst.tokens
            hold.headers += ratelimit_headers(hold.takes, result)
            return
        take = takes[result.index]
        self.metrics.rate_limited.labels(take.name, client).inc()
        seconds = max(1, math.ceil(result.retry_after_ms / 1000))
        unit = "requests" if take.kind == "requests" else "tokens"
        headers: Headers = [
            (b"retry-after", b"%d" % seconds),
            (b"retry-after-ms", b"%d" % result.retry_after_ms),
            (b"x-ratelimit-limit-" + unit.encode(), b"%d" % take.limit),
            (b"x-ratelimit-remaining-" + unit.encode(), b"0"),
            (b"x-ratelimit-reset-" + unit.encode(), reset_text(result.retry_after_ms).encode()),
        ]
        per = "RPM" if unit == "requests" else "TPM"
        raise OverLimit(
            f"Rate limit reached for client `{client}` on {unit} per min ({per}), limit "
            f"`{take.name}`: Limit {take.limit}, Requested {take.amount}. Please try again "
            f"in {reset_text(result.retry_after_ms)}.",
            code="rate_limit_exceeded",
            kind=unit,
            headers=headers,
        )

    async def _reserve(
        self, ex: Any, hold: Hold, budgets: list[Budget], worst: Worst, client: str
    ) -> None:
        seen = {b.name for b in budgets}
        while True:
            if worst.cost <= 0:
                return  # nothing this request may reach is priced: budgets cannot count it
            charges = tuple(self.shared.charge(b) for b in budgets)
            clamp = all(b.clamp_max_tokens for b in budgets)
            want = worst.cost
            prompt_cost = to_nano(worst.prompt_tokens * worst.input_price)
            minimum = want if not clamp else max(1, prompt_cost + to_nano(worst.output_price))
            result, placed = await self.shared.reserve(charges, hold.rid, want, minimum, self._ttl)
            if isinstance(result, Grant):
                break
            budget = budgets[result.index]
            if budget.on_exceeded != "degrade" or not self._degrade(ex, budget):
                self.metrics.budget_refusals.labels(budget.name, "rejected").inc()
                raise self._spent(budget)
            self.metrics.budget_refusals.labels(budget.name, "degraded").inc()
            hold.passed += (charges[result.index],)
            # The model it is degraded to counts its own budgets too, at its own prices.
            model = ex.route.name
            added = [b for b in self._budgets_for(client, model) if b.name not in seen]
            seen.update(b.name for b in added)
            budgets = budgets[: result.index] + budgets[result.index + 1 :] + added
            if not budgets:
                return
            call = ex.call
            worst = self.worst(call.payload, ex.request.body, call, ex.route, ex.excluded, model)
        hold.charges, hold.placed, hold.reserved = charges, placed, result.amount
        for charge in charges:
            self.metrics.budget_reservations.labels(charge.budget).inc()
        output = worst.output_tokens
        if result.amount < want and worst.output_price > 0:
            output = max(1, int((result.amount - prompt_cost) / (worst.output_price * 1e9)))
            self.metrics.budget_clamped.inc()
            ex.notes.append((b"x-modelroute-max-tokens-clamped", b"%d" % output))
        self._cap_output(ex, output)

    def _cap_output(self, ex: Any, output: int) -> None:
        """Send at most ``output`` tokens' worth upstream (what was reserved), in each
        limit the client set (max_tokens when none): whichever one the upstream reads."""
        payload = ex.call.payload
        keys = [k for k in _OUTPUT_LIMITS if k in payload] or ["max_tokens"]
        for key in keys:
            current = payload.get(key)
            if not (isinstance(current, int) and not isinstance(current, bool)) or not (
                0 < current <= output
            ):
                payload[key] = output
                ex.bodies.clear()

    def _degrade(self, ex: Any, budget: Budget) -> bool:
        """Move ``ex`` to the budget's cheaper model; False when there is none."""
        routes = ex.table.routes
        if budget.degrade_to is not None and budget.degrade_to in routes:
            ex.route = routes[budget.degrade_to]
        elif ex.tier is not None and ex.lower:
            tier, route = ex.lower[-1]  # the cheapest tier
            ex.tier, ex.route, ex.lower = tier, route, []
        else:
            return False
        ex.excluded = set()
        ex.notes.append((b"x-modelroute-degraded", b"budget:" + budget.name.encode()))
        return True

    def _spent(self, budget: Budget) -> OverLimit:
        _, end = window_bounds(budget.window, self.shared.clock())
        seconds = max(1, math.ceil(end - self.shared.clock()))
        resets = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return OverLimit(
            f"Budget `{budget.name}` ({budget.limit_usd:g} USD per {budget.window}) is spent; "
            f"it resets at {resets}.",
            code="budget_exceeded",
            kind="insufficient_quota",
            headers=[(b"retry-after", b"%d" % seconds)],
        )

    async def release(
        self, hold: Hold, cost: float | None, tokens: int | None, answered: bool
    ) -> None:
        """Settle the real cost and correct the tokens. ``cost`` None with an answer:
        the upstream reported no usage, so the reservation is what it cost (and its
        worst-case tokens what it used); without one, it cost nothing and used none."""
        try:
            if hold.charges:
                spent = to_nano(cost) if cost is not None else (hold.reserved if answered else 0)
                await self.shared.settle(hold.charges, hold.rid, spent, hold.placed)
                for charge in hold.charges:
                    self.metrics.budget_reservations.labels(charge.budget).dec()
            if hold.passed and cost:
                await self.shared.charge_spent(hold.passed, to_nano(cost))
            if tokens is None and not answered:
                tokens = 0
            if hold.takes and tokens is not None:
                await self._return_tokens(hold, tokens)
        finally:
            self.shared.released()

    async def _return_tokens(self, hold: Hold, used: int = 0) -> None:
        delta = used - hold.tokens
        for take in hold.takes:
            if take.kind == "tokens":
                await self.shared.correct(take, hold.minute, delta, hold.limit_placed)
        hold.takes = ()
