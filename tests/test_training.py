"""Training and export on small real data: single process, 2-process DDP, TorchScript round trip."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.conftest import SHARED
from training.config import SAMPLES, WEIGHTS, ExportConfig
from training.dataset import load_images, scan
from training.evaluate import predict_logits
from training.export import export, load_trained

TINY_DATA = [SHARED / "asl2text" / "train"] if SHARED.exists() else [SAMPLES]


def train_command(tmp_path: Path, launcher: list[str]) -> list[str]:
    data = [arg for root in TINY_DATA for arg in ("--data", str(root))]
    return [*launcher, "-m", "training.train", *data, "--limit-per-class", "4", "--epochs", "1",
            "--batch-size", "16", "--out-dir", str(tmp_path / "run"), "--weights", str(tmp_path / "w.pt"),
            "--figures-dir", str(tmp_path / "figures")]


def check_outputs(tmp_path: Path) -> dict:
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert checkpoint["classes"][-1] == "space" and "train_config" in checkpoint
    assert (tmp_path / "w.pt").exists()
    assert (tmp_path / "figures" / "training_curves.png").exists()
    assert (tmp_path / "figures" / "confusion_matrix.png").exists()
    assert metrics["history"][0]["train_loss"] > 0 and 0 <= metrics["validation"]["all"] <= 1
    return metrics


def test_smoke_training_run_under_a_minute(tmp_path):
    started = time.monotonic()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(train_command(tmp_path, [sys.executable]), check=True, env=env, cwd=tmp_path)
    check_outputs(tmp_path)
    assert time.monotonic() - started < 60


def test_ddp_two_processes(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run(train_command(tmp_path, torchrun), check=True, cwd=tmp_path, timeout=300)
    metrics = check_outputs(tmp_path)
    assert metrics["best_epoch"] == 1


def test_export_round_trip(tmp_path):
    report = export(WEIGHTS, (), tmp_path, ExportConfig(out_dir=tmp_path, calibration_images=64))
    fp32 = torch.jit.load(str(tmp_path / "asl_fp32.pt"))
    int8 = torch.jit.load(str(tmp_path / "asl_int8.pt"))
    images = load_images(scan([SAMPLES])).images
    eager = predict_logits(load_trained(WEIGHTS), images)
    assert torch.allclose(predict_logits(fp32, images), eager, atol=1e-3)
    agreement = float((predict_logits(int8, images).argmax(1) == eager.argmax(1)).float().mean())
    assert agreement >= 0.99 and report["int8_top1_agreement"] == agreement
    assert (tmp_path / "asl_int8.pt").stat().st_size <= (tmp_path / "asl_fp32.pt").stat().st_size / 3
