"""The ``embeddings`` transform: MiniLM-L6 sentence embeddings of a text dataset.

Input: one dataset, JSON Lines of ``{"id": str, "text": str}`` (a line that is a bare JSON
string is taken as the text, with its line number as id). Outputs:

- ``embeddings.npy``: float32 ``(n, 384)``, unit-length rows in input order;
- ``ids.json``: the row ids, in the same order.

Parameters: ``batch_size`` (default 32).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.enclave.transforms.minilm import DEFAULT_BATCH, Encoder

__all__ = ["parse_texts", "run"]


def parse_texts(data: bytes) -> tuple[list[str], list[str]]:
    """Ids and texts of a JSON Lines dataset; ``ValueError`` on a malformed line."""
    ids: list[str] = []
    texts: list[str] = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: {exc}") from exc
        if isinstance(doc, str):
            ids.append(str(number))
            texts.append(doc)
        elif isinstance(doc, dict) and isinstance(doc.get("text"), str):
            ids.append(str(doc.get("id", number)))
            texts.append(doc["text"])
        else:
            raise ValueError(f"line {number}: expected a string or {{id, text}}")
    return ids, texts


def run(inputs: Mapping[str, bytes], params: Mapping[str, Any], out_dir: Path) -> None:
    """Embed every text of every input dataset (datasets in id order)."""
    batch = int(params.get("batch_size", DEFAULT_BATCH))
    ids: list[str] = []
    texts: list[str] = []
    for dataset_id in sorted(inputs):
        more_ids, more_texts = parse_texts(inputs[dataset_id])
        ids += [f"{dataset_id}:{i}" for i in more_ids] if len(inputs) > 1 else more_ids
        texts += more_texts
    vectors = Encoder().encode(texts, batch_size=batch) if texts else np.zeros((0, 384), "f4")
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    (out_dir / "embeddings.npy").write_bytes(buffer.getvalue())
    (out_dir / "ids.json").write_text(json.dumps(ids))
