"""Training and export on small real data: single process, 2-process DDP, TorchScript round trip."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from asl_serve.layout import SAMPLES, WEIGHTS
from asl_serve.training.config import ExportConfig, TrainConfig
from asl_serve.training.dataset import load_images, scan
from asl_serve.training.export import export, load_trained
from asl_serve.training.metrics import predict_logits
from asl_serve.training.network import build_network
from tests.conftest import SHARED

# massey's cut-out hands and asl2text's `nothing` rooms exercise the background pasting too
TINY_DATA = [SHARED / "asl2text" / "train", SHARED / "massey" / "train"] if SHARED.exists() else [SAMPLES]


def train_command(tmp_path: Path, launcher: list[str]) -> list[str]:
    data = [arg for root in TINY_DATA for arg in ("--data", str(root))]
    return [*launcher, "-m", "asl_serve.training.train", *data, "--limit-per-class", "4", "--epochs", "1",
            "--samples-per-epoch", "64", "--batch-size", "16", "--out-dir", str(tmp_path / "run"),
            "--weights", str(tmp_path / "w.pt"), "--figures-dir", str(tmp_path / "figures")]


def check_outputs(tmp_path: Path) -> dict:
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert checkpoint["classes"][-1] == "space" and "train_config" in checkpoint
    assert (tmp_path / "w.pt").exists()
    assert (tmp_path / "figures" / "training_curves.png").exists()
    assert (tmp_path / "figures" / "confusion_matrix.png").exists()
    assert metrics["history"][0]["train_loss"] > 0 and 0 <= metrics["validation"]["all"] <= 1
    return metrics


def test_smoke_training_run(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(train_command(tmp_path, [sys.executable]), check=True, env=env, cwd=tmp_path, timeout=300)
    check_outputs(tmp_path)


def test_ddp_two_processes_train_the_head_and_keep_the_frozen_stem(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run(train_command(tmp_path, torchrun), check=True, cwd=tmp_path, timeout=300)
    check_outputs(tmp_path)
    trained = torch.load(tmp_path / "w.pt", weights_only=True)
    start = build_network(pretrained=True).state_dict()
    last_frozen, first_trained = (f"features.{i}.depthwise.0.weight" for i in (TrainConfig().frozen_blocks - 1,
                                                                                TrainConfig().frozen_blocks))
    assert torch.equal(trained["features.0.0.weight"], start["features.0.0.weight"])
    assert torch.equal(trained[last_frozen], start[last_frozen])
    assert not torch.equal(trained[first_trained], start[first_trained])


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
