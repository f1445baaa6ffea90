"""Where things are in this repository: the one owner of every path that more than one folder uses, of the
commit a build comes from and of the committed sample photos. It sits below everything but `model/` (which
knows no repository: it ships inside the archives) and does no I/O when imported.
"""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "asl"  # the seven sources, where a checkout has them beside it
SAMPLES = REPO / "samples" / "asl2text"  # committed real photos (Apache-2.0), see samples/README.md
ROBOFLOW_SAMPLES = REPO / "samples" / "roboflow"  # photos with hands small in rooms, marked by eye
SAMPLE_SETS = (SAMPLES, ROBOFLOW_SAMPLES)  # what `make evaluate` reads on a clone without the data
WEIGHTS = REPO / "training" / "weights" / "asl_lite0.pt"  # the trained CNN (training writes it, export reads it)
EXPORT_DIR = REPO / "build" / "export"
# Every exported variant's file in EXPORT_DIR (training.export writes them all)
EXPORT_FILES = {"fp32": "asl_fp32.pt", "int8": "asl_int8.pt", "onnx-fp32": "asl_fp32.onnx",
                "onnx-int8": "asl_int8.onnx"}
MODEL_STORE = REPO / "model_store"
CONFIG_PROPERTIES = REPO / "config.properties"
LOG_CONFIG = REPO / "log4j2.xml"  # TorchServe's log4j2 settings (make serve, private servers)
ALLOCATOR_ENV = REPO / "deploy" / "allocator.env"  # glibc's malloc settings for TorchServe (docs/performance.md)
KEY_FILE = REPO / "key_file.json"  # where `make serve`'s TorchServe writes its keys
REPORTS = REPO / "reports"
LOGS = REPO / "logs"


def git_commit(short: bool = False) -> str | None:
    """The checked-out commit, or None without git or outside a clone (a container build). Read-only:
    GIT_OPTIONAL_LOCKS=0 keeps git from refreshing the index."""
    return git("rev-parse", *(["--short"] if short else []), "HEAD")


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None where `git_commit` is None)."""
    changes = git("diff", "--name-only", "HEAD")
    return None if changes is None else bool(changes)


def git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def sample_photos(folder: Path = SAMPLES) -> list[tuple[Path, str]]:
    """The committed real photos of a folder-per-class tree, with their true labels, classes in name order."""
    return [(path, path.parent.name) for path in sorted(folder.glob("*/*.jpg"))]


def allocator_env() -> dict[str, str]:
    """ALLOCATOR_ENV's variables (the Makefile includes the file; the image's entry point sources it)."""
    lines = (line.strip() for line in ALLOCATOR_ENV.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
