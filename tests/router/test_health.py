"""The endpoint health state machine, without sockets: time is passed in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelroute.router.health import Admission, EndpointHealth, may_eject
from modelroute.spec.model import OutlierDetection, RateLimit
from modelroute.spec.schema import Duration

OUTLIER = OutlierDetection(
    consecutive_errors=3, base_ejection_time=Duration(10.0), max_ejection_time=Duration(25.0), max_ejection_percent=50
)
LIMITS = RateLimit(default_cooldown=Duration(1.0), max_cooldown=Duration(30.0))


def fresh() -> EndpointHealth:
    return EndpointHealth(key="p/r/u", provider="p", region="r")


def fail(h: EndpointHealth, now: float, reason: str = "5xx") -> bool:
    admission = h.admit(now)
    assert admission or h.state(now) != "healthy"
    ejected = h.failed(now, reason, OUTLIER, True, admission)
    h.done(admission)
    return ejected


def test_consecutive_failures_eject_and_success_resets_the_count() -> None:
    h = fresh()
    fail(h, 0)
    fail(h, 0)
    admission = h.admit(0)
    h.succeeded(0, admission, 0.1)
    h.done(admission)
    assert h.consecutive_failures == 0
    assert not fail(h, 1) and not fail(h, 1)
    assert fail(h, 1)
    assert h.state(1) == "ejected"
    assert not h.admit(5)
    assert h.available_at(5) == 11.0


def test_ejection_expires_into_one_half_open_trial() -> None:
    h = fresh()
    for _ in range(3):
        fail(h, 0)
    assert h.state(10.0) == "half-open"
    trial = h.admit(10.0)
    assert trial is Admission.TRIAL
    assert not h.admit(10.0)  # nobody else while it runs
    h.succeeded(10.5, trial, 0.2)
    h.done(trial)
    assert h.state(10.5) == "healthy"
    assert h.admit(10.5) is Admission.ADMITTED and h.admit(10.5) is Admission.ADMITTED


def test_only_the_trial_itself_frees_the_trial_slot() -> None:
    h = fresh()
    older = h.admit(0.0)  # in flight before the endpoint was ejected
    for _ in range(3):
        fail(h, 0)
    trial = h.admit(10.0)
    assert trial is Admission.TRIAL
    h.done(older)  # the older request ends: the trial is still running
    assert not h.admit(10.0)
    h.failed(10.1, "5xx", OUTLIER, True, older)  # an old failure is not the trial's
    assert h.consecutive_failures == 1 and h.ejections == 1
    h.succeeded(10.2, trial)
    h.done(trial)
    assert h.state(10.2) == "healthy"


def test_a_success_from_before_an_ejection_does_not_end_it() -> None:
    h = fresh()
    older = h.admit(0.0)
    for _ in range(3):
        fail(h, 0)
    h.succeeded(1.0, older, 0.1)
    h.done(older)
    assert h.state(1.0) == "ejected"


def test_a_stream_sample_does_not_reset_failures() -> None:
    h = fresh()
    fail(h, 0)
    h.sample(0.05)
    assert h.consecutive_failures == 1 and h.ewma == 0.05


def test_failed_trial_ejects_again_for_longer_up_to_the_cap() -> None:
    h = fresh()
    for _ in range(3):
        fail(h, 0)
    assert h.ejected_until == 10.0
    trial = h.admit(10.0)
    assert h.failed(10.0, "connect-failure", OUTLIER, True, trial)
    h.done(trial)
    assert h.ejected_until == 10.0 + 20.0  # base x 2 ejections
    trial = h.admit(30.0)
    h.failed(30.0, "timeout", OUTLIER, True, trial)
    h.done(trial)
    assert h.ejected_until == 30.0 + 25.0  # capped at maxEjectionTime


def test_max_ejection_percent_keeps_part_of_the_pool_in_service() -> None:
    a, b, c, d = fresh(), fresh(), fresh(), fresh()
    assert may_eject([a, b], 0, 50)
    for _ in range(3):
        fail(a, 0)
    assert a.ejected(1)
    assert not may_eject([a, b], 1, 50)  # one of two is half
    assert may_eject([a, b, c, d], 1, 50)  # one of four is not
    assert may_eject([a], 1, 0) is False
    assert may_eject([b], 1, 10)  # at least one may always be ejected


def test_rate_limit_cooldown_honours_retry_after_as_a_floor_with_a_cap() -> None:
    h = fresh()
    admission = h.admit(0)
    h.rate_limited(0, 5.0, LIMITS, admission)
    h.done(admission)
    assert h.state(1) == "cooling" and not h.admit(1)
    assert h.cooldown_until == 5.0
    assert h.consecutive_failures == 0  # a 429 is not an error
    g = fresh()
    g.rate_limited(0, None, LIMITS)
    assert g.cooldown_until == 1.0  # the default when no Retry-After was sent
    capped = fresh()
    capped.rate_limited(0, 3600.0, LIMITS)
    assert capped.cooldown_until == 30.0


def test_a_429_right_after_a_cooldown_extends_it() -> None:
    h = fresh()
    h.rate_limited(0, 2.0, LIMITS)
    assert h.state(2.0) == "half-open"
    trial = h.admit(2.0)
    h.rate_limited(2.0, 1.0, LIMITS, trial)
    h.done(trial)
    assert h.cooldown_until == 2.0 + 4.0  # doubled, although the upstream asked for 1 s


def test_probes_mark_unhealthy_and_healthy_by_threshold() -> None:
    h = fresh()
    h.probed(False, 2, 3)
    h.probed(False, 2, 3)
    assert h.state(0) == "healthy"
    h.probed(False, 2, 3)
    assert h.state(0) == "unhealthy" and not h.admit(0)
    h.probed(True, 2, 3)
    assert h.state(0) == "unhealthy"
    h.probed(True, 2, 3)
    assert h.state(0) == "healthy"


def test_percentile_needs_enough_samples() -> None:
    h = fresh()
    for i in range(19):
        h.sample(i / 100)
    assert h.percentile(0.95) is None
    h.sample(0.19)
    assert h.percentile(0.95) == 0.19


events = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=40)),
        st.tuples(st.just("succeed"), st.floats(min_value=0.001, max_value=5)),
        st.tuples(st.sampled_from(["5xx", "timeout", "connect-failure"]), st.just(0.0)),
        st.tuples(st.just("429"), st.one_of(st.none(), st.floats(min_value=0, max_value=100))),
        st.tuples(st.just("probe"), st.booleans()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_state_machine_invariants(script: list[tuple[str, object]]) -> None:
    h = fresh()
    now = 0.0
    for kind, arg in script:
        if kind == "advance":
            now += float(arg)  # type: ignore[arg-type]
            continue
        if kind == "probe":
            h.probed(bool(arg), 2, 3)
            continue
        admitted = h.admit(now)
        if h.state(now) == "ejected" or h.state(now) == "cooling" or h.state(now) == "unhealthy":
            assert not admitted  # never tried while out of service
        if not admitted:
            continue
        if h.state(now) == "half-open":
            assert not h.admit(now)  # one trial at a time
        if kind == "succeed":
            h.succeeded(now, admitted, float(arg))  # type: ignore[arg-type]
        elif kind == "429":
            h.rate_limited(now, arg, LIMITS, admitted)  # type: ignore[arg-type]
        else:
            h.failed(now, kind, OUTLIER, True, admitted)
        h.done(admitted)
        assert not h.trial_in_flight
        assert h.in_flight == 0
        assert h.ejected_until - now <= OUTLIER.max_ejection_time + 1e-9
        assert h.cooldown_until - now <= LIMITS.max_cooldown + 1e-9
        assert h.ewma >= 0
