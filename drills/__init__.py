"""Drills against a real TorchServe: the bad-input corpus, worker faults, the soak and the version roll-out.

They use the harness and, for the soak's traffic, the load tests' Locust runner; nothing imports them back.
"""
