"""The Prometheus rules in monitoring/ agree with the runbook catalogue, and promtool accepts them.

Both ways: every catalogue alert has exactly one rule, and every alert rule outside the SLO and
receiver files is a catalogue alert, labelled and annotated from the catalogue (severity, service,
runbook, runbook_url). The SLO burn-rate alerts implement monitoring/slo.yml. The receiver's own
alerts watch only the receiver's metrics and are marked so that they never reach pflow-ops.
promtool (Debian's ``prometheus`` package) checks the files and runs the unit tests in
monitoring/tests/.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops import catalogue
from pflow_ops.sandbox import metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
ALERT_RULES = MONITORING / "rules" / "pivotal-flow.rules.yml"
SLO_RULES = MONITORING / "rules" / "pivotal-flow.slo.rules.yml"
RECEIVER_RULES = MONITORING / "rules" / "pflow-ops-receiver.rules.yml"
SLO_FILE = MONITORING / "slo.yml"
README = MONITORING / "README.md"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
TEST_FILES = sorted((MONITORING / "tests").glob("*.test.yml"))

# The sandbox rewrites durations to a compressed timescale and only understands these forms.
DURATION = re.compile(r"\d+[ms]")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(r"\[([^\]]*)\]")
_OFFSET = re.compile(r"\boffset\s+([\w-]+)")
_INCREASE = re.compile(r"\bincrease\(\s*([a-z_:]+)\{([^}]*)\}\[([^\]]*)\]\)")
_METRIC = re.compile(r"\b(pflow_receiver_[a-z_]+)\{([^}]*)\}")

# The receiver's metrics (pflow_ops/receiver/metrics.py and the issue 14 contract), without the
# pflow_receiver_ prefix; the README documents each one.
RECEIVER_METRICS = (
    "requests_rejected_total", "alerts_received_total", "alerts_deduplicated_total",
    "alerts_throttled_total", "alerts_ignored_total", "alerts_cancelled_total", "runs_total",
    "run_duration_seconds", "queue_depth", "runs_in_progress", "alerts_attached_total",
    "alerts_skipped_total", "alertmanager_check_errors_total", "paused", "truncated_alerts_total",
    "journal_bytes", "journal_compactions_total", "connections", "token_reloads_total",
)  # fmt: skip
RECEIVER_JOB = "pflow-ops-receiver"
SELF_LABELS = {"service": "pflow-ops", "team": "sre", "pflow_ops_self": "true"}
SELF_SEVERITIES = {"critical", "high", "warning"}


def range_selectors(expr: str) -> list[str]:
    """The contents of every ``[...]`` in a PromQL expression, ignoring brackets inside strings."""
    return _RANGE.findall(_QUOTED.sub('""', expr))


def offsets(expr: str) -> list[str]:
    """The duration of every ``offset`` modifier, ignoring the word inside strings."""
    return _OFFSET.findall(_QUOTED.sub('""', expr))


def rules(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def alerts(path: Path) -> list[dict[str, Any]]:
    return [rule for rule in rules(path) if "alert" in rule]


def _one_alert(path: Path, name: str) -> dict[str, Any]:
    (found,) = [rule for rule in alerts(path) if rule["alert"] == name]
    return found


@pytest.fixture(scope="module")
def cat() -> catalogue.Catalogue:
    return catalogue.load()


@pytest.fixture(scope="module")
def slo() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SLO_FILE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: it ships with Debian's `prometheus` package, which "
            "scripts/setup.sh installs (or: apt-get install prometheus)"
        )
    return path


def _catalogue_alerts(cat: catalogue.Catalogue) -> list[str]:
    return [alert for rb in cat.runbooks for alert in rb.alerts]


def test_every_catalogue_alert_has_exactly_one_rule(cat: catalogue.Catalogue) -> None:
    names = [rule["alert"] for path in RULE_FILES for rule in alerts(path)]
    assert {a: names.count(a) for a in _catalogue_alerts(cat)} == {
        a: 1 for a in _catalogue_alerts(cat)
    }


def test_every_alert_rule_outside_the_slo_and_receiver_files_is_a_catalogue_alert(
    cat: catalogue.Catalogue,
) -> None:
    outside = [
        r["alert"] for p in RULE_FILES if p not in (SLO_RULES, RECEIVER_RULES) for r in alerts(p)
    ]
    assert sorted(outside) == sorted(_catalogue_alerts(cat))


@pytest.mark.parametrize("name", [a for rb in catalogue.load().runbooks for a in rb.alerts])
def test_alert_is_labelled_and_annotated_from_the_catalogue(
    cat: catalogue.Catalogue, name: str
) -> None:
    rb = cat.for_alert(name)
    rule = _one_alert(ALERT_RULES, name)
    assert rule["labels"] == {"severity": rb.severity, "service": rb.service, "runbook": rb.id}
    notes = rule["annotations"]
    assert set(notes) == {"summary", "description", "runbook", "runbook_url"}
    assert (notes["runbook"], notes["runbook_url"]) == (rb.id, rb.runbook_url)
    assert rb.runbook_url.startswith("https://")
    assert "$value" in notes["description"]
    assert DURATION.fullmatch(str(rule["for"]))


BACKEND_DEFAULTS = ROOT / "collection" / "roles" / "backend" / "defaults" / "main.yml"
_LAST_THRESHOLD = re.compile(r"\)\s*>\s*([0-9.]+)\s*$")


def _threshold(name: str) -> float:
    """The number an alert's expression ends on: ``... (...) > N``."""
    (found,) = _LAST_THRESHOLD.findall(str(_one_alert(ALERT_RULES, name)["expr"]).strip())
    return float(found)


def test_eventloop_lag_threshold_is_rb01s_lag_max() -> None:
    """The lag that fires BackendEventLoopLag is the lag RB-01's diagnosis calls a blocked event
    loop, so the run the alert starts finds what the alert saw; summary and description say it."""
    defaults = yaml.safe_load(BACKEND_DEFAULTS.read_text(encoding="utf-8"))
    lag_max_ms = defaults["backend_node_eventloop_lag_max_ms"]
    assert _threshold("BackendEventLoopLag") * 1000 == lag_max_ms
    notes = _one_alert(ALERT_RULES, "BackendEventLoopLag")["annotations"]
    assert f"{lag_max_ms} ms" in notes["summary"]
    assert f"threshold {lag_max_ms}ms" in notes["description"]


def test_heap_threshold_is_the_ratio_its_summary_names() -> None:
    rule = _one_alert(ALERT_RULES, "BackendHeapNearLimit")
    percent = round(_threshold("BackendHeapNearLimit") * 100)
    assert f"{percent} %" in rule["annotations"]["summary"]
    assert f"threshold {percent} %" in " ".join(rule["annotations"]["description"].split())


def test_heap_line_is_rb01s_heap_near_limit_line() -> None:
    """The run BackendHeapNearLimit starts escalates on the same line the alert fired on: the
    ratio and the young generation's reserve are node_classify's constants."""
    path = ROOT / "collection" / "plugins" / "module_utils" / "node_classify.py"
    spec = importlib.util.spec_from_file_location("node_classify", path)
    assert spec and spec.loader
    node_classify = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(node_classify)
    assert _threshold("BackendHeapNearLimit") == node_classify.HEAP_NEAR_LIMIT_RATIO
    expr = _one_alert(ALERT_RULES, "BackendHeapNearLimit")["expr"]
    assert f"- {node_classify.YOUNG_GENERATION_RESERVE_BYTES} > 0" in expr


def test_slo_alerts_page_the_rb01_team_and_are_not_catalogue_alerts(
    cat: catalogue.Catalogue, slo: dict[str, Any]
) -> None:
    names = [s["alert"]["name"] for s in slo["slos"]]
    assert sorted(names) == sorted(r["alert"] for r in alerts(SLO_RULES))
    assert not set(names) & set(_catalogue_alerts(cat))
    for spec in slo["slos"]:
        rb = cat.get(spec["alert"]["runbook"])
        rule = _one_alert(SLO_RULES, spec["alert"]["name"])
        assert rule["labels"] == {"severity": rb.severity, "service": rb.service, "runbook": rb.id}
        notes = rule["annotations"]
        assert (notes["runbook"], notes["runbook_url"]) == (rb.id, rb.runbook_url)


def _recording_windows(slo_name: str) -> set[str]:
    names = [r["record"] for r in rules(SLO_RULES) if r.get("labels", {}).get("slo") == slo_name]
    return {n.removeprefix("slo:sli_error:ratio_rate") for n in names}


def test_burn_rate_thresholds_and_windows_follow_slo_yml(slo: dict[str, Any]) -> None:
    for spec in slo["slos"]:
        budget = round(1 - float(spec["objective"]), 6)
        expr = " ".join(_one_alert(SLO_RULES, spec["alert"]["name"])["expr"].split())
        windows = _recording_windows(spec["name"])
        for burn in spec["alert"]["burn_rates"]:
            threshold = f"> ({burn['factor']:g} * {budget:g})"
            for window in (burn["long_window"], burn["short_window"]):
                assert window in windows
                selector = f'slo:sli_error:ratio_rate{window}{{slo="{spec["name"]}"}}'
                assert f"{selector} {threshold}" in expr


def test_latency_threshold_is_a_bucket_of_the_backend_histogram(slo: dict[str, Any]) -> None:
    (latency,) = [s for s in slo["slos"] if "threshold_s" in s["sli"]]
    threshold = float(latency["sli"]["threshold_s"])
    assert threshold in metrics.BUCKETS
    exposed = str(int(threshold)) if threshold.is_integer() else repr(threshold)
    matchers = {
        m.replace("\\\\", "\\")
        for r in rules(SLO_RULES)
        if r.get("labels", {}).get("slo") == latency["name"]
        for m in re.findall(r'le=~"((?:[^"\\]|\\.)*)"', r["expr"])
    }
    assert matchers
    for pattern in matchers:  # the backend's le label, and Prometheus 3's normalised "1.0"
        assert re.fullmatch(pattern, exposed)
        assert re.fullmatch(pattern, f"{threshold:.1f}")


def test_range_selector_check_sees_brackets_outside_strings_only() -> None:
    expr = 'rate(x{status=~"[45].."}[5m]) / rate(y[1h]) + z[30s:10s]'
    assert range_selectors(expr) == ["5m", "1h", "30s:10s"]


def test_offset_check_sees_modifiers_outside_strings_only() -> None:
    assert offsets('x unless x offset 15m + y{a="offset 1h"} offset 2h') == ["15m", "2h"]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_range_and_for_uses_the_sandbox_forms(path: Path) -> None:
    found = [
        (r.get("alert") or r["record"], s) for r in rules(path) for s in range_selectors(r["expr"])
    ]
    assert found, f"{path.name}: no range selector found; is the check blind?"
    assert [f for f in found if not DURATION.fullmatch(f[1])] == []
    shifted = [(r.get("alert") or r["record"], o) for r in rules(path) for o in offsets(r["expr"])]
    assert [o for o in shifted if not DURATION.fullmatch(o[1])] == []
    fors = [(r["alert"], str(r["for"])) for r in alerts(path)]
    assert [f for f in fors if not DURATION.fullmatch(f[1])] == []
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    assert [g["name"] for g in groups if "interval" in g] == []  # the global interval applies


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def test_promtool_check_rules_accepts_every_rule_file(promtool: str) -> None:
    assert len(RULE_FILES) == 3
    proc = _promtool(promtool, "check", "rules", *map(str, RULE_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: str, path: Path) -> None:
    proc = _promtool(promtool, "test", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def _alert_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            cases += group.get("alert_rule_test") or []
    return cases


def test_every_alert_has_a_firing_and_a_quiet_promtool_case(
    cat: catalogue.Catalogue, slo: dict[str, Any]
) -> None:
    urls = {a: cat.for_alert(a).runbook_url for a in _catalogue_alerts(cat)}
    urls |= {s["alert"]["name"]: cat.get(s["alert"]["runbook"]).runbook_url for s in slo["slos"]}
    urls |= {r["alert"]: r["annotations"]["runbook_url"] for r in alerts(RECEIVER_RULES)}
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in _alert_cases():
        name = case["alertname"]
        expected = case.get("exp_alerts") or []
        (fired if expected else quiet).add(name)
        for alert in expected:  # each firing case pins the labels and the runbook link
            labels, notes = alert["exp_labels"], alert["exp_annotations"]
            assert labels.get("runbook") == notes.get("runbook")
            assert notes["runbook_url"] == urls[name]
    assert fired == quiet == set(urls)


# -- the receiver's own alerts -----------------------------------------------------------------


def _receiver_page(cat: catalogue.Catalogue) -> str:
    """The receiver alerts' page, next to the runbooks' pages on the same site."""
    base = cat.runbooks[0].runbook_url.rsplit("/", 1)[0]
    return f"{base}/pflow-ops-receiver"


@pytest.mark.parametrize("rule", alerts(RECEIVER_RULES), ids=lambda r: str(r["alert"]))
def test_receiver_alert_is_marked_for_humans_and_links_its_section(
    cat: catalogue.Catalogue, rule: dict[str, Any]
) -> None:
    labels = dict(rule["labels"])
    assert labels.pop("severity") in SELF_SEVERITIES
    # No `runbook` label: the receiver routes by it, and these alerts have no catalogue runbook.
    assert labels == SELF_LABELS
    notes = rule["annotations"]
    assert set(notes) == {"summary", "description", "runbook_url"}
    assert notes["runbook_url"] == f"{_receiver_page(cat)}#{rule['alert'].lower()}"
    assert "$value" in notes["description"]
    assert f"#### {rule['alert']}" in README.read_text(encoding="utf-8")  # the anchor exists


def test_receiver_alerts_are_neither_catalogue_alerts_nor_aliases(cat: catalogue.Catalogue) -> None:
    names = {r["alert"] for r in alerts(RECEIVER_RULES)}
    assert names and all(n.startswith("PflowOps") for n in names)
    assert not names & (set(_catalogue_alerts(cat)) | set(cat.aliases))


def test_receiver_rules_read_only_receiver_metrics_of_the_receiver_job() -> None:
    used: set[str] = set()
    for rule in alerts(RECEIVER_RULES):
        for metric, matchers in _METRIC.findall(rule["expr"]):
            assert f'job="{RECEIVER_JOB}"' in matchers, (rule["alert"], metric)
            used.add(metric.removeprefix("pflow_receiver_"))
        if "up{" in rule["expr"]:
            assert f'up{{job="{RECEIVER_JOB}"}}' in rule["expr"]
    assert used and used <= set(RECEIVER_METRICS)


def test_every_receiver_increase_also_counts_a_series_that_first_appears() -> None:
    """increase() needs two samples: a labelled counter's first increment would go unseen.

    Each ``increase(X[W])`` comes with ``X unless X offset W`` on the same selector and window.
    """
    seen = 0
    for rule in alerts(RECEIVER_RULES):
        expr = " ".join(rule["expr"].split())
        for metric, matchers, window in _INCREASE.findall(expr):
            selector = f"{metric}{{{matchers}}}"
            assert f"{selector} unless {selector} offset {window}" in expr, rule["alert"]
            seen += 1
    assert seen >= 5


def test_readme_documents_every_receiver_metric() -> None:
    text = README.read_text(encoding="utf-8")
    assert [m for m in RECEIVER_METRICS if f"`pflow_receiver_{m}`" not in text] == []
