"""The p99 → HPA metrics pipeline, checked with Debian's real prometheus and promtool.

Four router pods are emulated on loopback and scraped by a real Prometheus with the
labels Kubernetes service discovery gives them (namespace, pod, and route and region
copied from the pod labels):

  pod                 region      upstream latency   traffic
  chat-use1-fast      us-east-1   50 ms              closed loop while scraped
  chat-use1-warm      us-east-1   0 ms               a few requests before the first scrape
  chat-euw1-slow      eu-west-1   400 ms             closed loop while scraped (half streams)
  chat-euw1-cold      eu-west-1   0 ms               none

The exact ``metricsQuery`` of each shipped prometheus-adapter rule is filled in the
way prometheus-adapter fills it for one region's HPA and evaluated through
Prometheus' HTTP API. Everything skips only when prometheus/promtool are missing.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from modelroute.operator.render import IN_FLIGHT_METRIC, LATENCY_METRICS
from modelroute.router.metrics import LATENCY_BUCKETS
from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimBehaviour, SimServer, start_sim

from .prometheus import MISSING, PROMETHEUS, PROMTOOL, Prometheus

FILES = Path(__file__).resolve().parents[2] / "charts" / "modelroute" / "files"
ADAPTER_RULES = FILES / "prometheus-adapter-rules.yaml"
PROMETHEUS_RULES = FILES / "prometheus-rules.yaml"
DASHBOARD = FILES / "grafana-dashboard.json"

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=MISSING)
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None, reason=MISSING)
module_loop = pytest.mark.asyncio(loop_scope="module")

NAMESPACE = "ai"
ROUTE = "chat"
TARGET_P99 = 0.3  # seconds: spec.autoscaling.targetP99 of the HPA being emulated
HPA_TOLERANCE = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance
TRAFFIC_SECONDS = 6.0
WORKERS = 4  # closed-loop clients per busy router


@dataclass
class Pod:
    name: str
    region: str
    latency_ms: float
    router: RouterServer | None = None
    sim: SimServer | None = None


@dataclass
class Pipeline:
    prometheus: Prometheus
    pods: dict[str, Pod]
    requests: dict[str, int] = field(default_factory=dict)

    def hpa_pods(self, region: str) -> list[str]:
        """The pods one region's HPA selector matches, in the order the API lists them."""
        return [pod.name for pod in self.pods.values() if pod.region == region]


PODS = (
    Pod("chat-use1-fast", "us-east-1", 50),
    Pod("chat-use1-warm", "us-east-1", 0),
    Pod("chat-euw1-slow", "eu-west-1", 400),
    Pod("chat-euw1-cold", "eu-west-1", 0),
)


# --- the adapter rules -----------------------------------------------------------


def adapter_rules() -> dict[str, dict[str, Any]]:
    """The shipped prometheus-adapter rules by the custom metric name they expose."""
    document = yaml.safe_load(ADAPTER_RULES.read_text())
    return {rule["name"]["as"]: rule for rule in document["rules"]["custom"]}


def series_name(rule: dict[str, Any]) -> str:
    match = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"])
    assert match, rule["seriesQuery"]
    return match.group(1)


def metrics_query(rule: dict[str, Any], namespace: str, pods: list[str]) -> str:
    """The rule's metricsQuery as prometheus-adapter builds it for a Pods metric of an
    HPA (sigs.k8s.io/prometheus-adapter pkg/naming/metrics_query.go, Build): the
    namespace matcher, then the resource label matched against every pod the HPA's
    selector lists (=~ joined with | when there are several), grouped by that label."""
    pod_matcher = f'pod=~"{"|".join(pods)}"' if len(pods) > 1 else f'pod="{pods[0]}"'
    query: str = rule["metricsQuery"]
    for name, value in {
        "Series": series_name(rule),
        "LabelMatchers": f'namespace="{namespace}",{pod_matcher}',
        "GroupBy": "pod",
    }.items():
        query = query.replace(f"<<.{name}>>", value)
    assert "<<" not in query, query
    return query


def bucket_around(seconds: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] that an observation of ``seconds`` falls in."""
    lower = 0.0
    for upper in LATENCY_BUCKETS:
        if seconds <= upper:
            return lower, upper
        lower = upper
    return lower, math.inf


# --- fixtures ----------------------------------------------------------------------


def route_document(pod: Pod, sim: SimServer) -> dict[str, Any]:
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": ROUTE},
        "spec": {
            "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
            "providers": [
                {
                    "name": "sim",
                    "endpoints": [{"region": pod.region, "baseURL": sim.url}],
                    "pricing": {"sim-model": {"input": 1.0, "output": 2.0}},
                }
            ],
            "models": [{"name": "chat", "targets": [{"provider": "sim", "model": "sim-model"}]}],
        },
    }


async def ask(
    session: aiohttp.ClientSession, router: RouterServer, stream: bool = False, model: str = "chat"
) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    async with session.post(f"{router.url}/chat/completions", json=body) as response:
        await response.read()
        return response.status


async def closed_loop(router: RouterServer, seconds: float, stream_every: int) -> int:
    """WORKERS clients that each send the next request when the last one is answered."""
    deadline = time.monotonic() + seconds
    sent = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while time.monotonic() < deadline:
            sent += 1
            status = await ask(session, router, stream=bool(stream_every and sent % stream_every))
            assert status == 200

    connector = aiohttp.TCPConnector(limit=WORKERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(WORKERS)))
    return sent


def scrape_config(pods: dict[str, Pod]) -> list[dict[str, Any]]:
    """One job, one static target per router, with the labels kubernetes_sd relabelling
    (or a ServiceMonitor with podTargetLabels renamed) would give the pod."""
    return [
        {
            "job_name": "modelroute",
            "metrics_path": "/metrics",
            "static_configs": [
                {
                    "targets": [f"127.0.0.1:{pod.router.port}"],
                    "labels": {
                        "namespace": NAMESPACE,
                        "pod": pod.name,
                        "route": ROUTE,
                        "region": pod.region,
                    },
                }
                for pod in pods.values()
                if pod.router is not None
            ],
        }
    ]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pipeline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pipeline]:
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.skip(MISSING)
    workdir = tmp_path_factory.mktemp("pipeline")
    pods = {pod.name: Pod(pod.name, pod.region, pod.latency_ms) for pod in PODS}
    prometheus: Prometheus | None = None
    try:
        for pod in pods.values():
            pod.sim = await start_sim(behaviour=SimBehaviour(latency_ms=pod.latency_ms))
            config = workdir / f"{pod.name}.yaml"
            config.write_text(yaml.safe_dump(route_document(pod, pod.sim)))
            pod.router = RouterServer(config, region=pod.region, secrets_dir=workdir / "secrets")
            await pod.router.start()
        fast, warm, slow = (
            pods[name].router for name in ("chat-use1-fast", "chat-use1-warm", "chat-euw1-slow")
        )
        assert fast is not None and warm is not None and slow is not None
        async with aiohttp.ClientSession() as session:
            # Before the first scrape: traffic the rate() window will never see, a
            # stream (TTFT series) and a client error (a second status code).
            for _ in range(5):
                assert await ask(session, warm) == 200
            assert await ask(session, fast, stream=True) == 200
            assert await ask(session, fast, model="no-such-model") == 404

        prometheus = Prometheus(workdir / "prometheus", scrape_config(pods), [PROMETHEUS_RULES])
        await prometheus.start()
        await prometheus.wait_for('up{job="modelroute"} == 1', len(pods))
        # Every router has been scraped at least once before its traffic starts.
        await prometheus.wait_for("modelroute_requests_in_flight", len(pods))

        counts = await asyncio.gather(
            closed_loop(fast, TRAFFIC_SECONDS, stream_every=0),
            closed_loop(slow, TRAFFIC_SECONDS, stream_every=2),
        )
        requests = {"chat-use1-fast": counts[0], "chat-euw1-slow": counts[1]}
        await asyncio.sleep(2.5)  # two more scrapes after the last answer
        yield Pipeline(prometheus, pods, requests)
    finally:
        if prometheus is not None:
            await prometheus.stop()
        for pod in pods.values():
            if pod.router is not None:
                await pod.router.close()
            if pod.sim is not None:
                await pod.sim.close()


# --- 1. promtool check metrics on a live router --------------------------------------


@needs_prometheus
@module_loop
async def test_promtool_check_metrics_passes_on_live_router(pipeline: Pipeline) -> None:
    router = pipeline.pods["chat-use1-fast"].router
    assert router is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{router.port}/metrics") as response,
    ):
        assert response.status == 200
        exposition = await response.read()
    text = exposition.decode()
    # Histograms with samples, so the lint sees buckets, sums and counts in use.
    assert 'modelroute_request_duration_seconds_bucket{le="0.1",model="chat"}' in text
    assert 'modelroute_time_to_first_token_seconds_count{model="chat"} 1.0' in text
    assert 'modelroute_requests_total{code="404",model="other"} 1.0' in text
    assert PROMTOOL is not None
    promtool = await asyncio.create_subprocess_exec(
        PROMTOOL,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(promtool.communicate(exposition), timeout=30)
    # promtool is silent and exits 0 when every metric passes its lint.
    assert promtool.returncode == 0, output.decode()
    assert output.decode().strip() == "", output.decode()


# --- 2. rule files -------------------------------------------------------------------


@needs_promtool
def test_promtool_check_rules_passes() -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(PROMETHEUS_RULES)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_adapter_rules_expose_exactly_the_metrics_the_hpa_uses() -> None:
    rules = adapter_rules()
    assert set(rules) == {*LATENCY_METRICS.values(), IN_FLIGHT_METRIC}
    for name, rule in rules.items():
        assert rule["resources"] == {
            "overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        }, name
        assert re.fullmatch(rule["name"]["matches"], series_name(rule)), name
        query = rule["metricsQuery"]
        # Every selector is narrowed to the HPA's pods, nothing is invented for them.
        selectors = re.findall(r"modelroute_[a-z_]+(\{[^}]*\})?", query)
        assert selectors and all(s == "{<<.LabelMatchers>>}" for s in selectors), name
        assert "vector(" not in query, name  # a pod-less sample the adapter cannot map
    for metric, histogram in (
        ("modelroute_request_duration_seconds_p99", "modelroute_request_duration_seconds"),
        ("modelroute_time_to_first_token_seconds_p99", "modelroute_time_to_first_token_seconds"),
    ):
        query = " ".join(rules[metric]["metricsQuery"].split())
        assert (
            f"histogram_quantile(0.99, sum by (le, <<.GroupBy>>) "
            f"(rate({histogram}_bucket{{<<.LabelMatchers>>}}[2m]))) >= 0"
        ) in query


def _series(name: str, pod: str, values: str, **labels: str) -> dict[str, str]:
    all_labels = {"namespace": NAMESPACE, "pod": pod, **labels}
    text = ",".join(f'{key}="{value}"' for key, value in sorted(all_labels.items()))
    return {"series": f"{name}{{{text}}}", "values": values}


@needs_promtool
def test_adapter_queries_and_alerts_with_promtool_unit_tests(tmp_path: Path) -> None:
    """The queries on synthetic series (15 s scrapes, evaluated at 5 m), including what a
    live test cannot wait for: a pod whose traffic stopped minutes ago.
    a: 10 requests per scrape, all between 50 and 100 ms, 3 in flight;
    b: same until 1m15s, then idle;   c: never served a request."""
    rules = adapter_rules()
    histogram = "modelroute_request_duration_seconds"
    series: list[dict[str, str]] = []
    for pod, grow in (("a", "0+10x20"), ("b", "0+10x5 50x15")):
        series += [
            _series(f"{histogram}_bucket", pod, "0x20", le="0.05", model="chat"),
            _series(f"{histogram}_bucket", pod, grow, le="0.1", model="chat"),
            _series(f"{histogram}_bucket", pod, grow, le="+Inf", model="chat"),
            _series(f"{histogram}_count", pod, grow, model="chat"),
            _series("modelroute_requests_total", pod, grow, model="chat", code="200"),
        ]
    series += [
        _series("modelroute_requests_in_flight", "a", "3x20"),
        _series("modelroute_requests_in_flight", "b", "0x20"),
        _series("modelroute_requests_in_flight", "c", "0x20"),
        _series(
            "modelroute_upstream_healthy", "a", "1 1 0x18",
            provider="deepseek", exported_region="us-east-1", region="us-east-1", route=ROUTE,
        ),
    ]  # fmt: skip

    def expect(metric: str, pods: list[str], samples: dict[str, float]) -> dict[str, Any]:
        return {
            "expr": metrics_query(rules[metric], NAMESPACE, pods),
            "eval_time": "5m",
            "exp_samples": [
                {"labels": f'{{pod="{pod}"}}', "value": value} for pod, value in samples.items()
            ],
        }

    p99 = "modelroute_request_duration_seconds_p99"
    ttft = "modelroute_time_to_first_token_seconds_p99"
    unit_tests = {
        "rule_files": [str(PROMETHEUS_RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                "promql_expr_test": [
                    # b and c are missing (not 0) while a serves: the HPA holds their place.
                    expect(p99, ["a", "b", "c"], {"a": 0.05 + 0.99 * 0.05}),
                    expect(IN_FLIGHT_METRIC, ["a", "b", "c"], {"a": 3}),
                    # the whole HPA set idle: 0 for every scraped pod, so it can scale in.
                    expect(p99, ["b", "c"], {"b": 0, "c": 0}),
                    expect(IN_FLIGHT_METRIC, ["b", "c"], {"b": 0, "c": 0}),
                    # no streams anywhere: no TTFT pressure, 0 for every pod.
                    expect(ttft, ["a", "b", "c"], {"a": 0, "b": 0, "c": 0}),
                ],
                "alert_rule_test": [
                    {
                        "alertname": "ModelrouteProviderAllEndpointsUnhealthy",
                        "eval_time": "5m",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": NAMESPACE,
                                    "route": ROUTE,
                                    "provider": "deepseek",
                                },
                                "exp_annotations": {
                                    "summary": "Every endpoint of provider deepseek is unhealthy for route ai/chat",
                                    "description": "No router pod has considered an endpoint of deepseek healthy for 2 minutes (ejected, cooling down after 429s, or failing probes). Requests fall back to the next target of each model's chain.",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / "unit-tests.yaml"
    test_file.write_text(yaml.safe_dump(unit_tests, sort_keys=False))
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- 3. the adapter queries against a real Prometheus --------------------------------


@needs_prometheus
@module_loop
async def test_adapter_p99_matches_upstream_latency_in_real_prometheus(
    pipeline: Pipeline,
) -> None:
    prom = pipeline.prometheus
    rules = adapter_rules()
    p99_rule = rules["modelroute_request_duration_seconds_p99"]
    east, west = pipeline.hpa_pods("us-east-1"), pipeline.hpa_pods("eu-west-1")

    # Each region's HPA asks for its own pods; only the pods that served in the window answer.
    measured = {
        **await prom.vector(metrics_query(p99_rule, NAMESPACE, east)),
        **await prom.vector(metrics_query(p99_rule, NAMESPACE, west)),
    }
    assert set(measured) == {"chat-use1-fast", "chat-euw1-slow"}, measured
    report = []
    for name, value in measured.items():
        latency = pipeline.pods[name].latency_ms / 1000
        # Every observation is the upstream's latency plus the router's own time, so it
        # falls in the bucket above the latency (50 ms is a bound: (0.05, 0.1]); with all
        # of them in one bucket histogram_quantile interpolates linearly inside it:
        # lower + 0.99 * (upper - lower), i.e. 0.0995 s and 0.4975 s here.
        lower, upper = bucket_around(latency + 0.001)
        report.append(
            f"{name}: upstream {latency:.3f}s, p99 {value:.4f}s, bucket ({lower}, {upper}]"
        )
        assert lower < value <= upper, report[-1]
    print("\n" + "\n".join(report), f"\nrequests: {pipeline.requests}")

    # The HPA (AverageValue targetP99 = 0.3 s) scales out the slow region, not the fast one.
    fast, slow = measured["chat-use1-fast"], measured["chat-euw1-slow"]
    assert slow / TARGET_P99 > 1 + HPA_TOLERANCE
    assert fast / TARGET_P99 < 1 - HPA_TOLERANCE

    # The warm pod served traffic only before the window: the naive query gives NaN for it,
    # which prometheus-adapter would hand the HPA as 0. The shipped rule leaves it out.
    naive = await prom.query(
        "histogram_quantile(0.99, sum by (le, pod) (rate(modelroute_request_duration_seconds_bucket"
        f'{{namespace="{NAMESPACE}",pod=~"{"|".join(east)}"}}[2m])))'
    )
    naive_values = {s["metric"]["pod"]: float(s["value"][1]) for s in naive["data"]["result"]}
    assert math.isnan(naive_values["chat-use1-warm"]), naive_values

    # A set of pods with no traffic at all reports 0 for each (so an idle route scales in).
    idle = ["chat-use1-warm", "chat-euw1-cold"]
    assert await prom.vector(metrics_query(p99_rule, NAMESPACE, idle)) == dict.fromkeys(idle, 0.0)

    # TTFT: only the slow pod streamed in the window; us-east-1 saw no stream at all.
    ttft_rule = rules["modelroute_time_to_first_token_seconds_p99"]
    ttft_west = await prom.vector(metrics_query(ttft_rule, NAMESPACE, west))
    assert set(ttft_west) == {"chat-euw1-slow"}
    assert 0.25 < ttft_west["chat-euw1-slow"] <= 0.5
    assert await prom.vector(metrics_query(ttft_rule, NAMESPACE, east)) == dict.fromkeys(east, 0.0)

    # In flight: the busy pods report their average concurrency, the idle ones nothing.
    in_flight_rule = rules[IN_FLIGHT_METRIC]
    in_flight = {
        **await prom.vector(metrics_query(in_flight_rule, NAMESPACE, east)),
        **await prom.vector(metrics_query(in_flight_rule, NAMESPACE, west)),
    }
    assert set(in_flight) == {"chat-use1-fast", "chat-euw1-slow"}, in_flight
    assert all(0 < value <= WORKERS for value in in_flight.values()), in_flight
    single = await prom.vector(metrics_query(in_flight_rule, NAMESPACE, ["chat-euw1-cold"]))
    assert single == {"chat-euw1-cold": 0.0}

    # The shipped recording and alerting rules load and evaluate without error.
    rule_groups = (await prom.api("rules"))["data"]["groups"]
    assert {group["name"] for group in rule_groups} == {"modelroute.recording", "modelroute.alerts"}
    for group in rule_groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
            assert not rule.get("lastError"), rule


# --- 4. the Grafana dashboard --------------------------------------------------------

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "${datasource}": "prometheus",
}


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            yield from walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                yield f"panel {panel['title']!r} {target['refId']}", target["expr"]

    yield from walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, query  # Grafana's label_values(): the series' values of one label
        yield f"variable {variable['name']}", f"group by ({match[2]}) ({match[1]})"


def substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for name, value in values.items():
        expr = re.sub(rf"\$(\{{{name}\}}|{name}\b)", value, expr)
    assert not re.search(r"\$[a-zA-Z_{]", expr), expr
    return expr


@needs_prometheus
@module_loop
async def test_every_dashboard_expression_evaluates(pipeline: Pipeline) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {"namespace", "route", "region"} <= set(variables)
    every_panel_uses_the_datasource_variable = all(
        panel["datasource"]["uid"] == "${datasource}"
        for panel in dashboard["panels"]
        if panel.get("targets")
    )
    assert every_panel_uses_the_datasource_variable

    prom = pipeline.prometheus
    expressions = list(dashboard_expressions())
    assert len(expressions) > 25
    empty = []
    for selection in ({"namespace": ".*", "route": ".*", "region": ".*"},
                      {"namespace": NAMESPACE, "route": ROUTE, "region": "eu-west-1"}):  # fmt: skip
        for where, expr in expressions:
            answer = await prom.query(substitute(expr, selection))
            assert answer.get("status") == "success", (where, expr, answer)
            if not answer["data"]["result"]:
                empty.append(where)

    # The panels this traffic must fill do have data.
    for where in (
        "panel 'Request rate' A",
        "panel 'Latency p50 / p99' B",
        "panel 'p99 per pod, as the HPA sees it' A",
        "panel 'Upstream health (share of router pods that see the endpoint healthy)' A",
        "panel 'Tokens per second' A",
        "panel 'Cost per hour (USD)' A",
        "variable region",
    ):
        assert where not in empty, where
    # Upstream series keep their endpoint region under the target's `region` label.
    health = await prom.query(
        substitute(dict(expressions)[
            "panel 'Upstream health (share of router pods that see the endpoint healthy)' A"
        ], {"namespace": ".*", "route": ".*", "region": ".*"})
    )  # fmt: skip
    regions = {s["metric"].get("endpoint_region") for s in health["data"]["result"]}
    assert regions == {"us-east-1", "eu-west-1"}, health
