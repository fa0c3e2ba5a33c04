"""The RB-01 and service_manager filters are the module_utils functions, under their FQCN names."""

from __future__ import annotations

from ansible_collections.pivotal.flow_ops.plugins.filter import backend, service_manager


def test_backend_filters_are_exported() -> None:
    filters = backend.FilterModule().filters()
    assert set(filters) == {
        "backend_preflight",
        "backend_assess",
        "backend_node_diagnosis",
        "backend_plan",
        "backend_verdict",
        "backend_run_result",
    }
    assert "refusing to run" in filters["backend_preflight"]({"backend_confirm_env": "prod"})[-1]
    status = {"reachable": True, "running": False, "detail": "x: not running (EXITED)"}
    assessment = filters["backend_assess"](status, {"state": "refused"}, None, None, None, {})
    assert assessment["problem"] == "down"
    signals = {"logs": {"unhandled_rejection": "UnhandledPromiseRejection: Error: x"}}
    assessment = filters["backend_node_diagnosis"](assessment, status, signals, {})
    assert assessment["node"]["node_class"] == "unhandled_rejection"
    plan = filters["backend_plan"](assessment, "recover")
    assert plan["restart"] is True
    verdict = filters["backend_verdict"](assessment, plan, {}, None, {}, "diagnose")
    assert verdict["outcome"] == "escalate" and "diagnose only" in verdict["reason"]
    result = filters["backend_run_result"]({"runbook": "RB-01"}, assessment, plan, {}, None, {}, "diagnose")
    assert result["outcome"] == "escalate" and result["findings"] == assessment["findings"]


def test_service_manager_filters_are_exported() -> None:
    filters = service_manager.FilterModule().filters()
    assert set(filters) == {"supervisor_status", "restart_gated_result"}
    result = filters["restart_gated_result"]("supervisord", {"skipped": True}, {"skipped": True})
    assert result["restarted"] is False and result["detail"] == "not restarted"
