#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_health
short_description: Probe an HTTP endpoint and classify how it is (un)healthy
version_added: 0.1.0
description:
  - Sends C(GET) requests the way an on-call engineer would and classifies each probe as
    C(healthy) (expected status), C(unhealthy) (other status), C(hung) (TCP connected, no answer
    within I(timeout)), C(refused) (connection refused), C(timeout) (TCP connect timed out) or
    C(error) (DNS failure, connection reset, TLS error, ...).
  - The TCP connection is opened first and the HTTP request sent on it, so that "nothing listens"
    and "listens but does not answer" are told apart.
  - Order of the phases. An optional health gate (I(wait_timeout) > 0) probes every I(interval)
    until one probe is healthy. Then I(samples) probes are sent back to back. Then an optional soak
    (I(soak_seconds) > 0) probes every I(interval) for that long. When the gate does not pass, the
    samples and the soak are skipped.
  - The verdict is healthy only when the gate passed (if any) and every sample and soak probe was
    healthy. An unhealthy endpoint is a result, not a task failure; the task fails only on bad
    parameters.
  - Read-only; it runs for real in check mode and always reports C(changed=false).
seealso:
  - module: ansible.builtin.uri
    description: One HTTP request, without the classification, samples or gate.
  - module: pivotal.flow_ops.supervisor_program
    description: Restarts a program and gates on the same probe while watching the started process.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only, so it probes for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: C(http://) or C(https://) URL to C(GET). Redirects are not followed.
    type: str
    required: true
  timeout:
    description: Seconds per probe, connect and response together.
    type: float
    default: 2
  expect_status:
    description: HTTP statuses that count as healthy.
    type: list
    elements: int
    default: [200]
  samples:
    description: Number of probes sent back to back to measure the error rate and latency.
    type: int
    default: 1
  wait_timeout:
    description: When > 0, probe every I(interval) until one probe is healthy or this many seconds passed.
    type: float
    default: 0
  interval:
    description: Seconds between the starts of two probes during the gate and the soak.
    type: float
    default: 0.5
  soak_seconds:
    description: When > 0, keep probing every I(interval) for this long; any failed probe makes the verdict unhealthy.
    type: float
    default: 0
  validate_certs:
    description: Verify the server's TLS certificate and hostname.
    type: bool
    default: true
  port_owner:
    description:
      - When the endpoint's port accepted a connection, also name the process listening on it
        (read from C(/proc/net/tcp), C(/proc/net/tcp6) and C(/proc/PID/fd) on the target, like
        C(ss -ltnp)). Use it when the URL points at the target itself; RB-01 uses it to tell its
        own backend from another process squatting its port.
      - Needs the right to read other users' C(/proc/PID/fd) to name a process of another user.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Check the backend health endpoint
  pivotal.flow_ops.http_health:
    url: http://127.0.0.1:8000/health
    samples: 5
  register: backend_health

- name: Wait for the backend to come back, then watch it for 10 seconds
  pivotal.flow_ops.http_health:
    url: http://127.0.0.1:8000/health
    wait_timeout: 30
    soak_seconds: 10
    interval: 1
  register: backend_verify
"""

RETURN = r"""
healthy:
  description: Final verdict.
  type: bool
  returned: always
state:
  description:
    - Classification of the decisive probe (the last failed probe when the verdict is unhealthy,
      else the last probe). One of healthy, unhealthy, hung, refused, timeout, error.
  type: str
  returned: always
  sample: hung
status:
  description: HTTP status of the decisive probe, null when it got no response.
  type: int
  returned: always
reason:
  description: Why the decisive probe failed, null when it was healthy.
  type: str
  returned: always
  sample: "no HTTP response within 2 s after connecting"
body:
  description:
    - Body of the decisive probe, parsed as JSON when possible, else its first 2 KB as text.
    - Null when the probe got no response.
  type: raw
  returned: always
latency_ms:
  description: Duration of the decisive probe (connect to end of body) in milliseconds.
  type: float
  returned: always
samples:
  description:
    - Statistics over every probe after the gate (the I(samples) burst and the soak probes).
    - Latency percentiles are over probes that got an HTTP response; null when none did.
  type: dict
  returned: always
  sample: {count: 5, failures: 1, error_rate: 0.2, p50_ms: 3.1, p95_ms: 9.8, max_ms: 9.8,
           statuses: {"200": 4, "503": 1}, states: {healthy: 4, unhealthy: 1}}
gate:
  description: The health gate; C(waited_s) is the time spent in it.
  type: dict
  returned: when wait_timeout > 0
  sample: {waited_s: 4.5, attempts: 10, passed: true}
soak:
  description:
    - The soak. C(first_failure) is null, or the seconds into the soak, the state and the status of
      the first failed probe.
  type: dict
  returned: when soak_seconds > 0
  sample: {seconds: 10.0, probes: 20, failures: 1, first_failure: {at_s: 3.5, state: refused, status: null}}
url:
  description: The probed URL.
  type: str
  returned: always
listener:
  description:
    - With I(port_owner), the process listening on the URL's port; C(pid) is null when nobody
      listens or the process is not visible (C(detail) says which). Null when the port did not
      accept a connection or I(port_owner) is false.
  type: dict
  returned: always
  sample: {port: 3000, pid: 4242, cmdline: "python3 -m http.server 3000", detail: "port 3000 is held by pid 4242 (python3 -m http.server 3000)"}
elapsed_s:
  description: Wall time of the whole check.
  type: float
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.http_probe import ProbeError, check

# The probe code lives in module_utils/http_probe.py (supervisor_program gates with it and
# backend_diagnose runs this very check).
ModuleFailure = ProbeError
run_module = check


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            timeout=dict(type="float", default=2.0),
            expect_status=dict(type="list", elements="int", default=[200]),
            samples=dict(type="int", default=1),
            wait_timeout=dict(type="float", default=0.0),
            interval=dict(type="float", default=0.5),
            soak_seconds=dict(type="float", default=0.0),
            validate_certs=dict(type="bool", default=True),
            port_owner=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_module(module.params)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
