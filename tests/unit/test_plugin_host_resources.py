"""host_resources on tmp paths and fake /proc/meminfo contents."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.plugins import load_plugin

ROOT = Path(__file__).resolve().parents[2]


hr = load_plugin("host_resources")
hc = load_plugin("host_checks", "module_utils")  # the checks themselves

MEMINFO = """MemTotal:        8000000 kB
MemFree:          100000 kB
MemAvailable:     {avail} kB
Buffers:           20000 kB
Cached:           300000 kB
SwapTotal:       2000000 kB
SwapFree:        1500000 kB
HugePages_Total:       0
"""


def test_disks_for_existing_and_missing_paths(tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet"
    res = hr.run_module({"paths": [str(tmp_path), str(missing)], "thresholds": None})
    here, gone = res["disks"]
    assert here["exists"] is True and here["checked_path"] == str(tmp_path)
    assert gone["exists"] is False and gone["checked_path"] == str(tmp_path)
    st = os.statvfs(tmp_path)
    assert (
        here["total_bytes"] == st.f_blocks * st.f_frsize
        and 0 < here["free_bytes"] <= here["total_bytes"]
    )
    assert os.path.ismount(here["mount_point"]) and str(tmp_path).startswith(here["mount_point"])
    assert here["status"] in ("ok", "warning", "critical") and here["status"] == gone["status"]
    checks = [f["check"] for f in res["findings"]]
    assert checks == [
        f"disk_free:{tmp_path}",
        f"disk_free:{missing}",
        "memory_available",
        "load_per_cpu",
    ]
    assert f"checked {tmp_path}" in res["findings"][1]["detail"]
    assert res["changed"] is False


def test_disk_thresholds_and_finding_format(tmp_path: Path) -> None:
    free = hr.run_module({"paths": [str(tmp_path)], "thresholds": {}})["disks"][0]["free_pct"]
    res = hr.run_module({"paths": [str(tmp_path)], "thresholds": {"disk_free_pct_min": free + 1}})
    assert res["disks"][0]["status"] == "warning"
    res = hr.run_module(
        {"paths": [str(tmp_path)], "thresholds": {"disk_free_pct_min": free * 2 + 1}}
    )
    assert res["disks"][0]["status"] == "critical" and res["status"] == "critical"
    detail = hr.run_module({"paths": [str(tmp_path)], "thresholds": {"disk_free_pct_min": 10}})[
        "findings"
    ][0]
    assert detail["detail"].startswith(f"{free}% free (") and detail["detail"].endswith(
        "), min 10%"
    )


@pytest.mark.parametrize(
    ("avail_kb", "status"), [(4000000, "ok"), (600000, "warning"), (300000, "critical")]
)
def test_memory_status(tmp_path: Path, avail_kb: int, status: str) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO.format(avail=avail_kb))
    memory, finding = hc.check_memory(10.0, str(meminfo))
    assert memory["total_bytes"] == 8000000 * 1024 and memory["available_bytes"] == avail_kb * 1024
    assert (
        memory["swap_total_bytes"] == 2000000 * 1024 and memory["swap_free_bytes"] == 1500000 * 1024
    )
    assert memory["status"] == finding["status"] == status
    assert finding["check"] == "memory_available" and "min 10%" in finding["detail"]


def test_memory_without_memavailable_or_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "\n".join(x for x in MEMINFO.splitlines() if not x.startswith("MemAvailable"))
    )
    memory, _ = hc.check_memory(10.0, str(meminfo))
    assert memory["available_bytes"] == (100000 + 20000 + 300000) * 1024
    memory, finding = hc.check_memory(10.0, str(tmp_path / "absent"))
    assert memory["status"] == finding["status"] == "unknown" and memory["total_bytes"] is None


def test_load_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hc, "usable_cpus", lambda: 4)
    for load1, status in ((1.0, "ok"), (9.0, "warning"), (17.0, "critical")):
        monkeypatch.setattr(hc.os, "getloadavg", lambda v=load1: (v, 0.5, 0.25))
        load, finding = hc.check_load(2.0)
        assert load["cpus"] == 4 and load["load1_per_cpu"] == round(load1 / 4, 2)
        assert load["status"] == finding["status"] == status


def test_real_host_and_bad_thresholds() -> None:
    res = hr.run_module({"paths": [], "thresholds": {"load_per_cpu_max": None}})
    assert res["disks"] == [] and res["load"]["cpus"] >= 1 and res["memory"]["total_bytes"] > 0
    assert res["status"] in ("ok", "warning", "critical", "unknown")
    with pytest.raises(hr.ModuleFailure):
        hr.run_module({"paths": [], "thresholds": {"load_per_cpu_max": 0}})


def test_dependency_check_reads_the_host_in_the_same_call(tmp_path: Path) -> None:
    """RB-01 reads its host and its dependencies with one module execution."""
    dc = load_plugin("dependency_check")
    res = dc.run_module(
        {"postgres": None, "redis": None, "resources": {"paths": [str(tmp_path)], "thresholds": {}}}
    )
    assert res["resources"]["status"] in ("ok", "warning", "critical", "unknown")
    assert [f["check"] for f in res["resources"]["findings"]][-2:] == [
        "memory_available",
        "load_per_cpu",
    ]
    assert res["dependencies"] == {} and "changed" not in res["resources"]
    with pytest.raises(dc.ModuleFailure):
        dc.run_module(
            {"resources": {"paths": [], "thresholds": {"load_per_cpu_max": 0}}, "redis": None}
        )
