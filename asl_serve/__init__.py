"""asl-serve's one import namespace, mapped onto the repository's folders by pyproject.toml.

`asl_serve.model` is model/, `asl_serve.handler` is handler/, and so on for training/, client/, demo/,
harness/, loadtests/ and drills/: the folders stay at the top of the repository, and installing the project
adds this one name to site-packages rather than `model`, `client` or `harness`. This folder holds only what
has no folder of its own: `layout`, the repository's paths. Every archive ships this file with model/
(handler/archive.py), so a worker imports the archive's own core.
"""
