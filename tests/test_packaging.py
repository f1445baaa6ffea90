"""The project installs as one namespace, asl_serve, mapped onto the folders (pyproject.toml); no code imports
a folder under its bare name (which would load a second copy of a module beside asl_serve's), and each
folder imports only the layers below it (README, Layout)."""

import ast
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from asl_serve.layout import REPO
from tests.conftest import tracked

# The layers, bottom first: each imports only those before it (asl_serve.layout is the layout layer)
LAYERS = ("model", "layout", "handler", "training", "client", "demo", "harness", "loadtests", "drills")


@pytest.fixture(scope="module")
def folders() -> set[str]:
    """The top-level folders of Python (a package each), asl_serve/ itself aside: each must be in the namespace."""
    return {path.parts[0] for path in tracked("*/__init__.py") if len(path.parts) == 2} - {"asl_serve"}


def test_every_folder_of_python_has_its_place_among_the_layers(folders):
    assert set(LAYERS) == folders | {"layout"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Iterator[zipfile.ZipFile]:
    """The wheel of the committed tree, built offline with the installed setuptools."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for path in tracked("*"):
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes((REPO / path).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True)
    (built,) = out.glob("asl_serve-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_adds_one_name_to_site_packages(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist() if ".dist-info/" not in name}
    assert tops == {"asl_serve"}


def test_every_module_of_every_folder_is_in_the_namespace(wheel, folders):
    names = set(wheel.namelist())
    expected = {f"asl_serve/{path.as_posix()}" for folder in folders for path in tracked(f"{folder}/*.py")}
    expected |= {"asl_serve/__init__.py", "asl_serve/layout.py", "asl_serve/model/MODEL_CARD.md",
                 "asl_serve/demo/static/index.html",
                 *(f"asl_serve/{path.as_posix()}" for path in tracked("model/weights/*"))}
    assert expected - names == set()
    assert not any(name.startswith("asl_serve/training/weights/") and name.endswith(".pt") for name in names)


def test_the_cli_entry_point_is_in_the_namespace(wheel):
    (entry_points,) = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    assert "asl = asl_serve.client.__main__:main" in wheel.read(entry_points).decode()


def imports(path: Path) -> list[tuple[int, str]]:
    """The absolute imports of a tracked module: (line, dotted name), `from a import b` as `a.b`."""
    found = []
    for node in ast.walk(ast.parse((REPO / path).read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_no_module_imports_a_folder_by_its_bare_name():
    bare = [f"{path}:{line} {module}" for path in tracked("*.py") for line, module in imports(path)
            if module.split(".")[0] in LAYERS]
    assert bare == []


def test_each_layer_imports_only_the_layers_below_it(folders):
    upward = []
    for path in [Path("asl_serve/layout.py"), *(p for folder in folders for p in tracked(f"{folder}/*.py"))]:
        layer = "layout" if path.parts[0] == "asl_serve" else path.parts[0]
        for line, module in imports(path):
            parts = module.split(".")
            if parts[0] == "asl_serve" and len(parts) > 1 and LAYERS.index(parts[1]) > LAYERS.index(layer):
                upward.append(f"{path}:{line} {module}")
    assert upward == []
