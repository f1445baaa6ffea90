"""Generate the gRPC stubs from the .proto files inside the installed TorchServe, at build time.

    python -m asl_serve.client.protos

The protos come from `ts/frontend/model-server.jar` (so they always match the server), are written
to client/proto/ (gitignored) and compiled with grpcio-tools so the modules import each other as
`asl_serve.client.proto.*` (protoc sees client/ under its import name, asl_serve/client). inference.proto
imports google/rpc/status.proto, which the jar ships but no installed Python package provides, so it is
compiled alongside, with its import path re-rooted.
"""

import shutil
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

import ts
from grpc_tools import protoc

PACKAGE_DIR = Path(__file__).resolve().parent
VIRTUAL = "asl_serve/client"  # protoc's name for PACKAGE_DIR: proto/x.proto becomes asl_serve.client.proto.x_pb2
OUT = PACKAGE_DIR / "proto"
JAR = Path(ts.__file__).resolve().parent / "frontend" / "model-server.jar"
STATUS = "google/rpc/status.proto"
SERVICES = ("inference", "management")
PACKAGES = (OUT, OUT / "google", OUT / "google" / "rpc")


def stubs_current() -> bool:
    """True when every generated module exists and is newer than the jar and this generator."""
    modules = [OUT / f"{name}_pb2_grpc.py" for name in SERVICES] + [OUT / "google" / "rpc" / "status_pb2.py"]
    newest = max(JAR.stat().st_mtime, Path(__file__).stat().st_mtime)
    return all(m.exists() and m.stat().st_mtime >= newest for m in modules)


def extract() -> list[Path]:
    """Write the service protos and status.proto under client/proto/, imports pointing there."""
    with zipfile.ZipFile(JAR) as archive:
        texts = {f"{name}.proto": archive.read(f"proto/{name}.proto").decode() for name in SERVICES}
        texts[STATUS] = archive.read(STATUS).decode()
    written = []
    for name, text in texts.items():
        target = OUT / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text.replace(f'import "{STATUS}"', f'import "{VIRTUAL}/proto/{STATUS}"'))
        written.append(target)
    for package in PACKAGES:
        (package / "__init__.py").touch()
    return written


def generate() -> Path:
    """Build client/proto/*_pb2*.py unless they are already current; returns the output directory."""
    if not stubs_current():
        protos = extract()
        include = str(resources.files("grpc_tools") / "_proto")  # google/protobuf/empty.proto
        with tempfile.TemporaryDirectory() as tmp:
            args = [f"-I{VIRTUAL}={PACKAGE_DIR}", f"-I{include}", f"--python_out={tmp}", f"--grpc_python_out={tmp}"]
            names = [f"{VIRTUAL}/{p.relative_to(PACKAGE_DIR)}" for p in protos]
            if protoc.main(["grpc_tools.protoc", *args, *names]) != 0:
                raise RuntimeError(f"protoc failed on {', '.join(p.name for p in protos)}")
            shutil.copytree(Path(tmp) / VIRTUAL / "proto", OUT, dirs_exist_ok=True)
    return OUT


if __name__ == "__main__":
    print(f"gRPC stubs in {generate().relative_to(PACKAGE_DIR.parent)}/")
