"""The endpoint health state machine, without sockets: time is passed in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelroute.router.health import AdmissionKind, EndpointHealth, may_eject
from modelroute.spec.model import HealthCheck, OutlierDetection, RateLimit
from modelroute.spec.schema import Duration, parse_section

OUTLIER = OutlierDetection(
    consecutive_errors=3, base_ejection_time=Duration(10.0), max_ejection_time=Duration(25.0), max_ejection_percent=50
)
LIMITS = RateLimit(default_cooldown=Duration(1.0), max_cooldown=Duration(30.0))
_check, _ = parse_section(HealthCheck, {"healthyThreshold": 2, "unhealthyThreshold": 3}, "check")
assert _check is not None
CHECK: HealthCheck = _check  # interval 10 s, unhealthyInterval 1 s


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
    assert trial.kind is AdmissionKind.TRIAL
    assert not h.admit(10.0)  # nobody else while it runs
    h.succeeded(10.5, trial, 0.2)
    h.done(trial)
    assert h.state(10.5) == "healthy"
    assert h.admit(10.5).kind is h.admit(10.5).kind is AdmissionKind.ADMITTED


def test_only_the_trial_itself_frees_the_trial_slot() -> None:
    h = fresh()
    older = h.admit(0.0)  # in flight before the endpoint was ejected
    for _ in range(3):
        fail(h, 0)
    trial = h.admit(10.0)
    assert trial.kind is AdmissionKind.TRIAL
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
    g.rate_limited(0, None, LIMITS, g.admit(0))
    assert g.cooldown_until == 1.0  # the default when no Retry-After was sent
    capped = fresh()
    capped.rate_limited(0, 3600.0, LIMITS, capped.admit(0))
    assert capped.cooldown_until == 30.0


def test_a_429_right_after_a_cooldown_extends_it() -> None:
    h = fresh()
    h.rate_limited(0, 2.0, LIMITS, h.admit(0))
    assert h.state(2.0) == "half-open"
    trial = h.admit(2.0)
    h.rate_limited(2.0, 1.0, LIMITS, trial)
    h.done(trial)
    assert h.cooldown_until == 2.0 + 4.0  # doubled, although the upstream asked for 1 s


def test_a_429_burst_already_in_flight_counts_once() -> None:
    h = fresh()
    burst = [h.admit(0.0) for _ in range(10)]  # all sent before the first 429 came back
    for i, admission in enumerate(burst):
        h.rate_limited(0.2 + i * 0.01, 5.0, LIMITS, admission)
        h.done(admission)
    assert h.cooldown_until == 5.2  # what the upstream asked, from the first 429
    assert h.state(5.2) == "half-open"  # its trial comes when Retry-After ends
    trial = h.admit(5.2)
    assert trial.kind is AdmissionKind.TRIAL
    h.rate_limited(5.3, 5.0, LIMITS, trial)  # sent after the cooldown began: it doubles
    h.done(trial)
    assert h.cooldown_until == 5.3 + 10.0 and h.cooldown_repeated


def test_failures_sent_before_an_ejection_do_not_eject_it_again() -> None:
    h = fresh()
    stalled = [h.admit(0.0) for _ in range(10)]  # requests that met a stall together
    for admission in stalled[:3]:
        h.failed(2.0, "timeout", OUTLIER, True, admission)
    assert h.state(2.0) == "ejected" and h.ejections == 1
    for admission in stalled[3:]:
        assert not h.failed(2.0, "timeout", OUTLIER, True, admission)
    for admission in stalled:
        h.done(admission)
    assert h.ejections == 1 and h.ejected_until == 12.0  # not 20 s, not 30 s


def test_past_the_ejection_cap_an_endpoint_is_degraded_not_kept_healthy() -> None:
    a, b = fresh(), fresh()
    pool = [a, b]
    for _ in range(3):
        fail(a, 0)
    assert a.state(0) == "ejected"
    for _ in range(3):
        admission = b.admit(0)
        ejected = b.failed(0, "5xx", OUTLIER, may_eject(pool, 0, 50), admission)
        b.done(admission)
        assert not ejected  # the cap holds: b stays in service...
    assert b.state(1) == "degraded"  # ...but marked: the plan tries it last
    assert b.usable(1) and not b.ejected(1) and b.out_of_service(1)
    assert not may_eject(pool, 1, 50)  # a degraded endpoint is not ejected
    older = b.admit(1)
    assert older.kind is AdmissionKind.ADMITTED
    b.succeeded(1.5, older, 0.1)  # a success while degraded restores it at once
    b.done(older)
    assert b.state(1.5) == "healthy"


def test_a_success_sent_before_a_degradation_does_not_end_it() -> None:
    h = fresh()
    older = h.admit(0.0)
    for _ in range(3):
        admission = h.admit(0.5)
        h.failed(0.5, "5xx", OUTLIER, False, admission)
        h.done(admission)
    assert h.state(0.6) == "degraded"
    h.succeeded(0.7, older, 0.1)
    h.done(older)
    assert h.state(0.7) == "degraded"


def test_a_reserved_trial_is_the_only_one() -> None:
    h = fresh()
    h.rate_limited(0, 1.0, LIMITS, h.admit(0))
    assert h.reserve_trial()
    assert not h.reserve_trial()  # one waiter per endpoint
    assert not h.admit(1.0)  # half-open, but its trial is taken
    trial = h.take_trial(1.0)
    assert trial.kind is AdmissionKind.TRIAL
    h.succeeded(1.1, trial, 0.1)
    h.done(trial)
    assert h.state(1.1) == "healthy" and not h.trial_in_flight
    g = fresh()
    g.rate_limited(0, 1.0, LIMITS, g.admit(0))
    assert g.reserve_trial()
    g.release_trial()
    assert g.admit(1.0).kind is AdmissionKind.TRIAL


def test_probes_mark_unhealthy_and_a_pass_lets_one_trial_through() -> None:
    h = fresh()
    h.probed(0, False, CHECK)
    h.probed(1, False, CHECK)
    assert h.state(1) == "healthy"
    h.probed(2, False, CHECK)
    assert h.state(2) == "unhealthy" and not h.admit(2)
    assert h.out_of_service(2)
    h.probed(3, True, CHECK)  # one pass: half-open, a request may confirm it
    assert h.state(3) == "half-open"
    h.probed(4, True, CHECK)  # healthyThreshold passes restore it without traffic
    assert h.state(4) == "healthy" and not h.out_of_service(4)

    g = fresh()
    for t in range(3):
        g.probed(t, False, CHECK)
    g.probed(3, True, CHECK)
    trial = g.admit(3)
    assert trial.kind is AdmissionKind.TRIAL and not g.admit(3)
    g.succeeded(3.1, trial, 0.05)
    g.done(trial)
    assert g.state(3.1) == "healthy"  # the trial's success needs no second probe


def test_a_passing_probe_ends_an_ejection_into_half_open() -> None:
    h = fresh()
    for _ in range(3):
        fail(h, 0)
    assert h.state(0.5) == "ejected" and h.out_of_service(0.5)
    h.probed(0.5, True, CHECK)  # too soon: an ejection lasts at least unhealthyInterval
    assert h.state(0.5) == "ejected"
    h.probed(1.0, True, CHECK)
    assert h.state(1.0) == "half-open"  # not the 10 s the ejection was for
    trial = h.admit(1.0)
    assert trial.kind is AdmissionKind.TRIAL and not h.admit(1.0)  # one trial, no stampede
    h.succeeded(1.2, trial, 0.05)
    h.done(trial)
    assert h.state(1.2) == "healthy"


def test_probes_that_pass_while_trials_fail_end_ejections_ever_later() -> None:
    h = fresh()
    for _ in range(3):
        fail(h, 0)
    h.probed(1.0, True, CHECK)
    assert h.state(1.0) == "half-open"
    assert fail(h, 1.0)  # the trial fails although the probe passed
    assert h.probe_misses == 1
    h.probed(2.5, True, CHECK)  # 1.5 s: the next one needs 2 s
    assert h.state(2.5) == "ejected"
    h.probed(3.0, True, CHECK)
    assert h.state(3.0) == "half-open"
    assert fail(h, 3.0)
    h.probed(6.0, True, CHECK)  # 3 s: now it needs 4 s
    assert h.state(6.0) == "ejected"
    h.probed(7.0, True, CHECK)
    assert h.state(7.0) == "half-open"
    assert fail(h, 7.0)
    # A failing probe shows the probes see the outage: their next pass is trusted again.
    h.probed(7.5, False, CHECK)
    h.probed(8.0, True, CHECK)
    assert h.state(8.0) == "half-open"


def test_a_passing_probe_does_not_end_a_cooldown() -> None:
    h = fresh()
    h.rate_limited(0, 5.0, LIMITS, h.admit(0))
    h.probed(2.0, True, CHECK)
    assert h.state(2.0) == "cooling"
    assert not h.out_of_service(2.0)  # no fast probes: they cannot tell a quota is back


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
        st.tuples(st.sampled_from(["5xx", "timeout", "connect-failure"]), st.booleans()),
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
            h.probed(now, bool(arg), CHECK)
            continue
        admitted = h.admit(now)
        if h.state(now) in ("ejected", "cooling", "unhealthy"):
            assert not admitted  # never tried while out of service
        if h.state(now) in ("healthy", "degraded"):
            assert admitted  # a degraded endpoint is still in service
        if not admitted:
            continue
        if h.state(now) == "half-open":
            assert not h.admit(now)  # one trial at a time
        if kind == "succeed":
            h.succeeded(now, admitted, float(arg))  # type: ignore[arg-type]
            if admitted.trial:
                assert h.state(now) == "healthy"  # a successful trial restores it
        elif kind == "429":
            h.rate_limited(now, arg, LIMITS, admitted)  # type: ignore[arg-type]
        else:
            h.failed(now, kind, OUTLIER, bool(arg), admitted)  # arg: may the pool lose one?
        h.done(admitted)
        assert not h.trial_in_flight
        assert h.in_flight == 0
        assert h.ejected_until - now <= OUTLIER.max_ejection_time + 1e-9
        assert h.cooldown_until - now <= LIMITS.max_cooldown + 1e-9
        assert h.ewma >= 0
