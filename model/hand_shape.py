"""The landmark classifier: a hand's 21 landmarks to the 29 classes, and its fusion with the CNN.

The landmarks carry the finger shape (what tells T, N, M, S, E and A apart) and ignore skin, light
and background. They are normalised so that only the shape and its orientation remain: origin at the
wrist, unit length from the wrist to the middle finger's knuckle, left hands mirrored to right ones.
"""

from pathlib import Path

import torch
from torch import nn

from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.hands import MIDDLE_MCP, WRIST

HAND_SHAPE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "asl_hand_shape.pt"
FEATURES = 21 * 3


def hand_features(landmarks: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """(N, 21, 3) landmarks in pixels and (N,) bool is-right-hand to (N, 63) normalised features."""
    points = landmarks.float() - landmarks[:, WRIST : WRIST + 1].float()
    palm = points[:, MIDDLE_MCP, :2].norm(dim=1).clamp_min(1e-6)
    points = points / palm[:, None, None]
    mirror = torch.where(right, 1.0, -1.0)
    points = torch.cat([points[..., :1] * mirror[:, None, None], points[..., 1:]], dim=2)
    return points.flatten(1)


class HandShapeNet(nn.Module):
    """A small MLP on the normalised landmarks."""

    def __init__(self, hidden: int = 256, dropout: float = 0.2, classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def fuse(cnn_logits: torch.Tensor, shape_logits: torch.Tensor, weight: float) -> torch.Tensor:
    """log p_cnn + weight * log p_landmarks, rows aligned: the fused scores, as logits."""
    return torch.log_softmax(cnn_logits.float(), 1) + weight * torch.log_softmax(shape_logits.float(), 1)


def fuse_where_found(cnn_logits: torch.Tensor, shape_logits: torch.Tensor, found: torch.Tensor,
                     weight: float) -> torch.Tensor:
    """What the pipeline answers, as logits: the fusion in rows where a hand was found, the CNN alone elsewhere
    (rows of `shape_logits` without a hand are never read)."""
    return torch.where(found[:, None], fuse(cnn_logits, shape_logits, weight), torch.log_softmax(cnn_logits.float(), 1))


def load_hand_shape(path: Path = HAND_SHAPE_WEIGHTS) -> tuple[HandShapeNet, float]:
    """The trained landmark classifier and the fusion weight chosen with it on the validation blocks."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    net = HandShapeNet(**saved["shape"])
    net.load_state_dict(saved["state_dict"])
    return net.eval(), float(saved["fusion_weight"])


def save_hand_shape(net: HandShapeNet, hidden: int, dropout: float, fusion_weight: float,
                    path: Path = HAND_SHAPE_WEIGHTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "shape": {"hidden": hidden, "dropout": dropout},
                "fusion_weight": fusion_weight}, path)
