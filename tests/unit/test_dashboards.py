"""Every `fraudstream_*` series a Grafana dashboard or a PrometheusRule of the platform chart asks
for is one the scorer or the API exports, under the name Prometheus gives it (a counter's
`_total`, a histogram's `_bucket`/`_sum`/`_count`): a renamed metric cannot leave a panel or an
alert silently empty. Series of other exporters (Kafka, Airflow, `up`) are not checked here."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from fraudstream.adapters.scorer_metrics import ScorerMetrics
from fraudstream.api.metrics import ApiMetrics

CHART = Path(__file__).resolve().parents[2] / "charts" / "fraud-platform"
SERIES = re.compile(r"\bfraudstream_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def _exported(registry: CollectorRegistry) -> set[str]:
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def exported_series() -> set[str]:
    api = ApiMetrics(lambda: [{"metric": "psi_score", "value": 0.1, "breached": False}])
    return _exported(ScorerMetrics().registry) | _exported(api.registry)


def queried_series() -> dict[str, set[str]]:
    """Series named by each dashboard's panels and by the chart's alerting rules."""
    found: dict[str, set[str]] = {}
    for path in sorted((CHART / "files" / "dashboards").glob("*.json")):
        panels = json.loads(path.read_text())["panels"]
        exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
        found[path.name] = {name for expr in exprs for name in SERIES.findall(expr)}
    rules = (CHART / "templates" / "monitoring.yaml").read_text()
    exprs = [line.split("expr:", 1)[1] for line in rules.splitlines() if "expr:" in line]
    found["monitoring.yaml"] = {name for expr in exprs for name in SERIES.findall(expr)}
    return found


def test_every_series_a_panel_or_rule_asks_for_is_exported() -> None:
    exported = exported_series()
    queried = queried_series()
    assert sum(len(names) for names in queried.values()) > 10  # the files were read
    missing = {where: sorted(names - exported) for where, names in queried.items()}
    assert not any(missing.values()), missing


def test_the_check_sees_a_misspelt_series() -> None:
    assert "fraudstream_api_requests_shed_total" in exported_series()
    assert "fraudstream_api_requests_shed" not in exported_series()  # the counter's bare name


BY = re.compile(r"\bby \(([^)]*)\)")


def test_the_scoring_dashboard_shows_decisions_by_outcome_and_rule_hits_by_rule() -> None:
    """The decision and rule-hit counters each have a panel grouped by their label, and the
    label a panel groups by is one the counter has (``labels`` refuses another name)."""
    metrics = ScorerMetrics()
    counters = {
        "fraudstream_decisions_total": (metrics.decisions, "outcome"),
        "fraudstream_rule_hits_total": (metrics.rule_hits, "rule"),
    }
    path = CHART / "files" / "dashboards" / "fraudstream-scoring.json"
    targets = [t for p in json.loads(path.read_text())["panels"] for t in p.get("targets", [])]
    for series, (counter, label) in counters.items():
        shown = [t for t in targets if series in t["expr"]]
        assert shown, f"no panel of {path.name} shows {series}"
        for target in shown:
            grouped = [g.strip() for found in BY.findall(target["expr"]) for g in found.split(",")]
            assert grouped == [label], (target["expr"], label)
            counter.labels(**{name: "x" for name in grouped})  # a label the counter lacks: error
            assert target["legendFormat"] == "{{" + label + "}}"
