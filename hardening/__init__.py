"""Hardening checks run against a real TorchServe: the bad-input corpus, worker faults and the soak."""
