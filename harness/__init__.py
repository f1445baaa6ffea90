"""The tooling's shared harness: private TorchServe servers, archive copies, waiting, prediction traffic, test
images made from real photos, and the browser.

Load tests (loadtests/), drills (drills/) and the tests all build on it, so a server is started, an archive
derived and a condition awaited in one way everywhere. It imports neither of them.
"""
