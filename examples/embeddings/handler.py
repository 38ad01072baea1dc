"""Sentence embeddings: {"sentences": [...]} in, 384-d unit vectors out, from the server's MiniLM model.

The tokenizer file ships in this folder (minilm_tokenizer.json) and is read once per instance in
setup(); sentences are padded to the longest in the request, truncated at 256 tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tokenizers import Tokenizer

from inferlab.errors import InvalidInput
from inferlab.functions import Handler, Request

MODEL = "minilm"
MAX_TOKENS = 256
MAX_SENTENCES = 64


class Embeddings(Handler):
    def setup(self) -> None:
        self.tokenizer = Tokenizer.from_file(str(self.context.path / "minilm_tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest sentence

    def decode(self, request: Request) -> dict[str, np.ndarray]:
        body = request.json()
        sentences = body.get("sentences") if isinstance(body, dict) else None
        if not isinstance(sentences, list) or not sentences or not all(isinstance(s, str) for s in sentences):
            raise InvalidInput('expected {"sentences": ["text", ...]} with at least one string')
        if len(sentences) > MAX_SENTENCES:
            raise InvalidInput(f"at most {MAX_SENTENCES} sentences per request, got {len(sentences)}")
        encoded = self.tokenizer.encode_batch(sentences)
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        }

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        vectors: np.ndarray = self.infer(MODEL, inputs)["sentence_embedding"]
        return vectors

    def encode(self, vectors: np.ndarray) -> dict[str, Any]:
        return {"embeddings": vectors.tolist(), "dimensions": int(vectors.shape[1])}
