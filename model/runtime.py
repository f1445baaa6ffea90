"""The one loader for every serialised variant: TorchScript (`.pt`) or ONNX Runtime (`.onnx`).

Either way the result is a callable from the network's float32 NCHW input to logits, both torch
tensors, so `model.pipeline.Classifier`, evaluation and comparison run every variant the same way.
"""

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import onnxruntime
import torch

# torch 2.13's notices about what this project serves on purpose, matched where they are filtered (here on
# load, and in training.export): TorchScript is deprecated, and so is the eager int8 API its int8 model uses.
TORCHSCRIPT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"
INT8_TENSORS_DEPRECATED = r"torch\.quantize_per_tensor.*deprecated"

def use_threads(threads: int) -> None:
    """This process's compute threads: torch's pool, OpenMP's, and kornia-rs's Rayon pool (decode, resize),
    which is sized once, at its first use: call this before the first image."""
    torch.set_num_threads(threads)
    for variable in ("OMP_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[variable] = str(threads)


def load_model(path: Path, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model at `path` for inference on the CPU with `threads` intra-op threads.

    TorchScript runs on torch's process-wide thread pool, so loading one sets `torch.set_num_threads`;
    an ONNX Runtime session has its own pool.
    """
    if path.suffix == ".onnx":
        return OnnxModel(path, threads)
    torch.set_num_threads(threads)
    silence_int8_deprecation()
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript in favour of torch.export; TorchScript is the format this project
        # serves (TorchServe's handler loads it), so the notice says nothing a user can act on.
        warnings.filterwarnings("ignore", message=TORCHSCRIPT_DEPRECATED, category=DeprecationWarning)
        return torch.jit.freeze(torch.jit.load(str(path), map_location="cpu").eval())


class OnnxModel:
    """An ONNX Runtime session that takes and returns torch tensors, as a TorchScript module does."""

    def __init__(self, path: Path, threads: int):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads would spin on cores that other workers and the preprocessing need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        # The session reads a dense NCHW buffer; the shared preprocessing hands over channels_last.
        (logits,) = self.session.run(None, {self.input: batch.contiguous().numpy()})
        return torch.from_numpy(logits)


def silence_int8_deprecation() -> None:
    """Spend c10's warn-once "quantized tensor creation is deprecated" under a Python filter.

    Loading the int8 TorchScript creates quantized tensors, and c10 then prints that notice straight
    to stderr, past Python's warning filters. The notice concerns the eager quantization API the export
    used; the loaded model keeps working. Raised once from Python, it goes through `warnings` (where
    it is ignored) and c10 does not print it again in this process.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=INT8_TENSORS_DEPRECATED)
        torch.quantize_per_tensor(torch.zeros(1), 1.0, 0, torch.quint8)
