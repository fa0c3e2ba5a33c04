"""The investigation's sub-steps in the report's timeline."""

from __future__ import annotations

from pflow_ops.report_steps import with_substeps
from pflow_ops.runner import Step

START = "2026-12-06T02:02:06.758365+00:00"


def step(name: str, phase: str, host: str = "web1", start: str = START) -> Step:
    return Step(
        name=name, phase=phase, host=host, start=start, duration_s=0.2, status="ok", changed=False
    )


CHECKS = [
    {
        "check": "service_status",
        "step": "Verify the backend service status",
        "start_s": 0.001,
        "duration_s": 0.01,
        "status": "critical",
        "detail": "not running",
    },
    {
        "check": "api_sample",
        "step": "Sample the backend API",
        "start_s": 0.5,
        "duration_s": 0,
        "status": "skipped",
        "detail": "",
    },
]


def test_checks_follow_the_first_investigate_step_of_their_host() -> None:
    steps = [
        step("Preflight", "preflight"),
        step("Investigate", "investigate"),
        step("Assess", "investigate"),
    ]
    out = with_substeps(steps, {"web1": {"investigation": CHECKS}})
    assert [s.name for s in out] == [
        "Preflight",
        "Investigate",
        "Verify the backend service status",
        "Sample the backend API",
        "Assess",
    ]
    sub = out[2]
    assert sub.phase == "investigate" and sub.host == "web1" and sub.status == "critical"
    assert sub.start == "2026-12-06T02:02:06.759365+00:00" and sub.message == "not running"
    assert not sub.changed


def test_each_host_gets_its_own() -> None:
    steps = [step("Investigate", "investigate", "a"), step("Investigate", "investigate", "b")]
    out = with_substeps(steps, {"b": {"investigation": CHECKS[:1]}})
    assert [(s.host, s.name) for s in out] == [
        ("a", "Investigate"),
        ("b", "Investigate"),
        ("b", "Verify the backend service status"),
    ]


def test_nothing_published_leaves_the_timeline_as_it_is() -> None:
    steps = [step("Investigate", "investigate")]
    assert with_substeps(steps, None) == tuple(steps)
    assert with_substeps(steps, {"web1": {"investigation": "junk"}}) == tuple(steps)
    assert with_substeps(steps, {"web1": "junk"}) == tuple(steps)


def test_an_unusable_start_keeps_the_parents() -> None:
    out = with_substeps(
        [step("I", "investigate", start="?")], {"web1": {"investigation": [{"start_s": "x"}]}}
    )
    assert out[1].start == "?" and out[1].name == "?" and out[1].duration_s == 0.0
