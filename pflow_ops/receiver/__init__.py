"""``pflow-ops serve``: the Alertmanager webhook receiver. Each alert it acts on becomes one
``pflow-ops alert`` child process; the receiver itself never runs Ansible."""
