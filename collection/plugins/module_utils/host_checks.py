# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Infrastructure health of a host as the runbooks read it: free disk on the service's paths,
available memory, load per CPU. Shared by host_resources and dependency_check (RB-01 reads the
host and its dependencies in one module call)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os

DEFAULTS = {"disk_free_pct_min": 10.0, "memory_available_pct_min": 10.0, "load_per_cpu_max": 2.0}
RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}


def host_checks_argument_spec():
    """The options of the host checks, the same in host_resources and in dependency_check's
    ``resources`` (one spec, so the two modules cannot drift)."""
    return dict(
        paths=dict(type="list", elements="path", default=[]),
        thresholds=dict(
            type="dict",
            default={},
            apply_defaults=True,
            options=dict((name, dict(type="float", default=value)) for name, value in DEFAULTS.items()),
        ),
    )


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def pct(value: float) -> str:
    return f"{value:g}%"


def floor_status(value, minimum: float) -> str:
    if value is None:
        return "unknown"
    if value < minimum / 2:
        return "critical"
    return "warning" if value < minimum else "ok"


def nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def check_disk(path: str, minimum: float) -> tuple[dict, dict]:
    checked = nearest_existing(path)
    exists = checked == os.path.abspath(path)
    where = "" if exists else f"; path missing, checked {checked}"
    disk: dict = {"path": path, "exists": exists, "checked_path": checked, "mount_point": None,
                  "total_bytes": None, "free_bytes": None, "free_pct": None, "status": "unknown"}
    try:
        st = os.statvfs(checked)
        disk["mount_point"] = mount_point(checked)
    except OSError as exc:
        detail = f"cannot stat {checked}: {exc.strerror or exc}{where}"
        return disk, {"check": f"disk_free:{path}", "status": "unknown", "detail": detail}
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize  # what an unprivileged service can still write, as df shows
    disk.update(total_bytes=total, free_bytes=free)
    if total:
        disk["free_pct"] = round(free * 100 / total, 1)
        disk["status"] = floor_status(disk["free_pct"], minimum)
        detail = f"{disk['free_pct']}% free ({human(free)} of {human(total)}), min {pct(minimum)}{where}"
    else:
        detail = f"{checked} is on a filesystem without block accounting ({disk['mount_point']}){where}"
    return disk, {"check": f"disk_free:{path}", "status": disk["status"], "detail": detail}


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    values: dict[str, int] = {}
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            key, _sep, rest = line.partition(":")
            fields = rest.split()
            if fields and fields[0].isdigit():
                values[key] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return values


def check_memory(minimum: float, meminfo_path: str = "/proc/meminfo") -> tuple[dict, dict]:
    try:
        info = read_meminfo(meminfo_path)
    except OSError as exc:
        memory = dict.fromkeys(("total_bytes", "available_bytes", "available_pct", "swap_total_bytes",
                                "swap_free_bytes"))
        memory["status"] = "unknown"
        return memory, {"check": "memory_available", "status": "unknown",
                        "detail": f"cannot read {meminfo_path}: {exc.strerror or exc}"}
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
    available_pct = round(available * 100 / total, 1) if total else None
    memory = {"total_bytes": total, "available_bytes": available, "available_pct": available_pct,
              "swap_total_bytes": info.get("SwapTotal", 0), "swap_free_bytes": info.get("SwapFree", 0),
              "status": floor_status(available_pct, minimum)}
    detail = f"{available_pct}% available ({human(available)} of {human(total)}), min {pct(minimum)}"
    if memory["swap_total_bytes"]:
        used = memory["swap_total_bytes"] - memory["swap_free_bytes"]
        detail += f"; swap {human(used)} used of {human(memory['swap_total_bytes'])}"
    return memory, {"check": "memory_available", "status": memory["status"], "detail": detail}


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_load(maximum: float) -> tuple[dict, dict]:
    try:
        load1, load5, load15 = os.getloadavg()
    except (AttributeError, OSError) as exc:
        load = {"load1": None, "load5": None, "load15": None, "cpus": usable_cpus(), "load1_per_cpu": None,
                "status": "unknown"}
        return load, {"check": "load_per_cpu", "status": "unknown", "detail": f"no load average: {exc}"}
    cpus = usable_cpus()
    per_cpu = round(load1 / cpus, 2)
    status = "critical" if per_cpu > 2 * maximum else "warning" if per_cpu > maximum else "ok"
    load = {"load1": round(load1, 2), "load5": round(load5, 2), "load15": round(load15, 2), "cpus": cpus,
            "load1_per_cpu": per_cpu, "status": status}
    detail = f"load1 {load['load1']:g} on {cpus} CPUs = {per_cpu:g} per CPU, max {maximum:g}"
    return load, {"check": "load_per_cpu", "status": status, "detail": detail}


class HostCheckError(Exception):
    """Bad thresholds: the calling module fails its task with this message."""


def check_host(params: dict) -> dict:
    """Disk free on each of params["paths"], available memory and load per CPU against
    params["thresholds"]; {changed, disks, memory, load, findings, status}."""
    thresholds = dict(DEFAULTS)
    thresholds.update({k: v for k, v in (params.get("thresholds") or {}).items() if v is not None})
    if thresholds["disk_free_pct_min"] < 0 or thresholds["memory_available_pct_min"] < 0:
        raise HostCheckError("thresholds must be >= 0")
    if thresholds["load_per_cpu_max"] <= 0:
        raise HostCheckError("thresholds.load_per_cpu_max must be > 0")
    disks, findings = [], []
    for path in params.get("paths") or []:
        disk, finding = check_disk(path, thresholds["disk_free_pct_min"])
        disks.append(disk)
        findings.append(finding)
    memory, finding = check_memory(thresholds["memory_available_pct_min"])
    findings.append(finding)
    load, finding = check_load(thresholds["load_per_cpu_max"])
    findings.append(finding)
    worst = max((f["status"] for f in findings), key=RANK.__getitem__)
    return {"changed": False, "disks": disks, "memory": memory, "load": load, "findings": findings,
            "status": worst}
