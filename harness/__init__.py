"""The tooling's shared harness: private TorchServe servers, archives, waiting, and prediction traffic.

Load tests, benchmarks, hardening scripts, the roll-out demo and the tests all build on it, so a
server is started, an archive derived and a condition awaited in one way everywhere.
"""
