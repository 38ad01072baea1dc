"""MobileNet classifier (seed 002): TF Serving style `instances` in, the top-5 labels per instance out.

An instance is either an ImageNet-normalised CHW tensor [3, 224, 224] or raw HWC pixels
[224, 224, 3] in 0..255, which are normalised here. The model runs in the server through the
same scheduler as `/v2/models/mobilenet_v2/infer`; this handler only shapes data around it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferlab.errors import InvalidInput
from inferlab.functions import Handler, Request

MODEL = "mobilenet_v2"
TOP_K = 5
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class Classifier(Handler):
    def setup(self) -> None:
        self.labels = (self.context.path / "labels.txt").read_text().splitlines()

    def decode(self, request: Request) -> np.ndarray:
        body = request.json()
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('expected {"instances": [image, ...]} with at least one image')
        try:
            batch = np.asarray(instances, dtype=np.float32)
        except ValueError as exc:
            raise InvalidInput(f"instances must be equally shaped numeric arrays: {exc}") from None
        if batch.shape[1:] == (224, 224, 3):
            return np.ascontiguousarray(((batch / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2))
        if batch.shape[1:] != (3, 224, 224):
            raise InvalidInput(
                f"each instance must be [3, 224, 224] (normalised) or [224, 224, 3] (pixels), got {list(batch.shape[1:])}"
            )
        return batch

    def predict(self, batch: np.ndarray) -> np.ndarray:
        logits: np.ndarray = self.infer(MODEL, {"input": batch})["logits"]
        return logits

    def encode(self, logits: np.ndarray) -> dict[str, Any]:
        top = np.argsort(-logits, axis=1)[:, :TOP_K]
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores = np.take_along_axis(shifted / shifted.sum(axis=1, keepdims=True), top, axis=1)
        return {"predictions": [
            {"classes": row.tolist(), "labels": [self.labels[i] for i in row], "scores": s.round(6).tolist()}
            for row, s in zip(top, scores, strict=True)
        ]}
