"""Drills against a real TorchServe: the bad-input corpus, worker faults, the soak, the version roll-out and the
Kubernetes manifests in a local pod (kube_play).

They use the harness and, for the soak's traffic, the load tests' Locust runner; nothing imports them back.
"""
