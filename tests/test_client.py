"""The `asl` command line against a real TorchServe: folders, failures, formats, options, help."""

import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from asl_serve.client.__main__ import build_parser
from asl_serve.client.settings import Server
from asl_serve.harness.server import free_ports
from asl_serve.layout import REPO, SAMPLES

CLASSES = ("A", "B", "space")
CONSOLE_SCRIPT = Path(sys.executable).parent / "asl"


def asl(server: Server | None, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asl_serve.client", *args], cwd=REPO, capture_output=True, text=True, timeout=180,
        env={**os.environ, **(server.env() if server else {}), **(env or {})},
    )


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory) -> Path:
    """Committed photos in folders named by class, one level down, plus a truncated JPEG and a text file."""
    root = tmp_path_factory.mktemp("photos") / "signers"
    for name in CLASSES:
        shutil.copytree(SAMPLES / name, root / "set1" / name)
    (root / "set1" / "B" / "broken.jpg").write_bytes((SAMPLES / "B").glob("*.jpg").__next__().read_bytes()[:1500])
    (root / "set1" / "A" / "notes.txt").write_text("not an image, and not named like one: skipped")
    return root


def photos_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jpg"))


def test_folders_are_searched_and_a_bad_file_does_not_stop_the_run(torchserve, photo_tree):
    done = asl(torchserve.server, "predict", str(photo_tree))
    images = photos_in(photo_tree)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1  # one image failed
    assert sorted(row["image"] for row in rows) == sorted(map(str, images))
    broken = photo_tree / "set1" / "B" / "broken.jpg"
    (failed,) = [row for row in rows if "error" in row]
    assert failed["image"] == str(broken) and "422" in failed["error"]
    assert f"error: {broken}: " in done.stderr and "CorruptImage" in done.stderr
    assert f"{len(images) - 1} of {len(images)} images predicted, 1 failed" in done.stderr
    for name in CLASSES:
        count = len(list((SAMPLES / name).glob("*.jpg")))
        assert any(line.split()[:1] == [name] and line.split()[1].endswith(f"/{count}")
                   for line in done.stderr.splitlines()), (name, done.stderr)
    assert "accuracy " in done.stderr and "1 that failed are not counted" in done.stderr


@pytest.mark.parametrize("transport", [[], ["--grpc"]], ids=["rest", "grpc"])
def test_ctrl_c_ends_a_folder_run_with_its_summary_and_130(torchserve, transport):
    """Interrupted after its first answer, a run over every committed sample prints what it has done."""
    process = subprocess.Popen(
        [sys.executable, "-m", "asl_serve.client", "predict", str(SAMPLES), *transport], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **torchserve.server.env()},
    )
    first_row = process.stdout.readline()  # one image answered: the run is under way
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert json.loads(first_row)["image"]
    assert process.returncode == 130
    assert f"of {len(photos_in(SAMPLES))} images" in stderr and "images predicted" in stderr
    assert "Traceback" not in stderr


def test_an_unknown_version_lists_the_known_ones(torchserve):
    done = asl(torchserve.server, "describe", "--version", "9.9-none")
    assert done.returncode == 1
    assert "no version '9.9-none'" in done.stderr and "1.0-int8" in done.stderr and "1.0-fp32" in done.stderr


def test_csv_output_has_a_header_and_one_record_per_image(torchserve, photo_tree):
    done = asl(torchserve.server, "predict", str(photo_tree / "set1" / "A"), "--format", "csv", "--top-k", "2")
    assert done.returncode == 0, done.stderr
    records = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(records) == len(list((photo_tree / "set1" / "A").glob("*.jpg")))
    for record in records:
        assert record["expected"] == "A" and record["model_version"] == "1.0-int8" and not record["error"]
        assert len(record["top_k"].split()) == 2 and float(record["probability"]) > 0


@pytest.mark.parametrize("bad", ["0", "30", "-1", "two"])
def test_top_k_is_validated_before_anything_is_sent(bad):
    done = asl(None, "predict", str(SAMPLES / "A"), "--top-k", bad)
    assert done.returncode == 2 and "must be an integer from 1 to 29" in done.stderr and done.stdout == ""


def test_server_options_go_before_or_after_the_command(torchserve):
    """Options, not the environment, name the server here: the environment points at nothing."""
    (dead,) = free_ports(1)
    nowhere = dataclasses.replace(
        torchserve.server, inference_url=f"http://127.0.0.1:{dead}", grpc_inference=f"127.0.0.1:{dead}"
    ).env()
    real = torchserve.server
    options = ["--inference-url", real.inference_url, "--grpc-inference", real.grpc_inference,
               "--key-file", str(real.key_file), "--retries", "0"]
    image = str(next((SAMPLES / "A").glob("*.jpg")))
    for args in (
        [*options, "--grpc", "predict", image],
        ["predict", image, *options, "--grpc"],
        ["--grpc", "predict", image, *options],
        [*options, "predict", image],
    ):
        done = asl(None, *args, env=nowhere)
        assert done.returncode == 0, (args, done.stderr)
        assert json.loads(done.stdout)["label"] == "A"
    unreachable = asl(None, "predict", image, "--retries", "0", env=nowhere)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_every_argument_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in {"asl": parser, **commands}.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_console_script_is_installed():
    if not CONSOLE_SCRIPT.exists():
        pytest.fail(f"{CONSOLE_SCRIPT} missing: `pip install -e .` (make install) creates it from [project.scripts]")
    done = subprocess.run([str(CONSOLE_SCRIPT), "predict", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: asl predict" in done.stdout and "--format" in done.stdout
