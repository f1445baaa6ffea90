"""TorchServe's config.properties: read as TorchServe reads it, and written back with some properties changed.

The one reader of the format for the whole repository: private servers, benchmarks, drills and tests all come
here rather than matching lines of their own.
"""

import json
import re
from importlib.metadata import version
from pathlib import Path

from asl_serve.layout import CONFIG_PROPERTIES

CONTINUATION = re.compile(r"\\\n\s*")


def parse(text: str) -> dict[str, str]:
    """Keys and values: comments skipped, continuation lines joined."""
    lines = [line for line in CONTINUATION.sub("", text).splitlines()
             if "=" in line and not line.lstrip().startswith(("#", "!"))]
    return {key.strip(): value.strip() for key, value in (line.split("=", 1) for line in lines)}


def read(path: Path = CONFIG_PROPERTIES) -> dict[str, str]:
    return parse(path.read_text())


def render(text: str, changes: dict[str, str]) -> str:
    """`text` with each property of `changes` set (a whole property, continuation lines included), comments
    and the order kept; a property it lacks is appended."""
    for key, value in changes.items():
        pattern = rf"^{re.escape(key)}=.*?(?<!\\)$"
        if re.search(pattern, text, flags=re.M | re.S):
            text = re.sub(pattern, lambda _, line=f"{key}={value}": line, text, count=1, flags=re.M | re.S)
        else:
            text += f"\n{key}={value}\n"
    return text


def default_version(model: str, config: dict[str, str] | None = None) -> tuple[str, dict]:
    """The version `models=` marks as the model's default, and its settings (of `config`, a parsed file;
    default: the repository's)."""
    versions = json.loads((config or read())["models"])[model]
    return next((name, spec) for name, spec in versions.items() if spec.get("defaultVersion"))


def torchserve() -> str:
    """"TorchServe X.Y.Z", the installed release, for reports to name rather than write down."""
    return f"TorchServe {version('torchserve')}"
