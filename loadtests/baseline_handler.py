"""The handler a TorchServe user would write from TorchServe's image examples: Pillow and NumPy, no Kornia.

A benchmark fixture, not product code: loadtests/bench/serve.py archives it beside the same TorchScript
model and index_to_name.json as the shipped archive, with batchSize 1. Its input size, normalisation
and top-k are model.config's (the installed project), so both handlers answer the same question.
BaseHandler loads the model and the label mapping; torch keeps its default thread count unless the
benchmark's model-config.yaml sets `handler.threads`, so the comparison can also be run with our
thread setting.
"""

import io

import numpy as np
import torch
from PIL import Image
from ts.torch_handler.base_handler import BaseHandler

from asl_serve.model.config import DEFAULT_TOP_K, PREPROCESS

SIZE = PREPROCESS.image_size
MEAN = np.array(PREPROCESS.mean, dtype=np.float32)
STD = np.array(PREPROCESS.std, dtype=np.float32)


class BaselineHandler(BaseHandler):
    def initialize(self, context):
        super().initialize(context)
        threads = (context.model_yaml_config or {}).get("handler", {}).get("threads")
        if threads:
            torch.set_num_threads(int(threads))

    def preprocess(self, data):
        images = []
        for row in data:
            payload = row.get("data") or row.get("body")
            image = Image.open(io.BytesIO(payload)).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
            pixels = (np.asarray(image, dtype=np.float32) / 255.0 - MEAN) / STD
            images.append(torch.from_numpy(pixels.transpose(2, 0, 1).copy()))
        return torch.stack(images)

    def postprocess(self, data):
        answers = []
        for row in torch.softmax(data, dim=1):
            values, indices = row.topk(DEFAULT_TOP_K)
            pairs = zip(values.tolist(), indices.tolist(), strict=True)
            top = [{"label": self.mapping[str(i)], "probability": round(p, 6)} for p, i in pairs]
            answers.append({"label": top[0]["label"], "probability": top[0]["probability"], "top_k": top})
        return answers
