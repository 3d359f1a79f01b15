"""The ``entity-resolution`` transform: train a record-pair matcher (logistic regression).

Input: JSON Lines of person records ``{"id", "entity", "name", "email", "phone", "city",
"birth_year"}``, where ``entity`` is the ground-truth cluster a record belongs to (the
training label; records of one entity are duplicates with noise). Candidate pairs come from
blocking (same first letter of the family name, or the same last four phone digits), so the
pair count stays near-linear. Each pair gets similarity features in [0, 1]; a logistic
regression with L2 is trained by full-batch gradient descent, deterministically (zero init,
fixed epochs), on the pairs whose hash puts them in the training split, and scored on the
rest.

Outputs: ``model.json`` (feature names, weights, bias, threshold) and ``metrics.json``
(precision, recall, F1 and accuracy on the training and holdout pairs).

Parameters: ``epochs`` (400), ``learning_rate`` (0.5), ``l2`` (0.001), ``holdout_mod`` (5:
one pair in five is held out).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FEATURES", "candidate_pairs", "features", "parse_records", "run", "train"]

FEATURES = (
    "name_trigram_jaccard",
    "name_token_jaccard",
    "email_exact",
    "email_local_trigram_jaccard",
    "phone_exact",
    "city_exact",
    "birth_year_close",
)
_NON_ALNUM = re.compile(r"[^a-z0-9 ]+")


def _norm(text: Any) -> str:
    return " ".join(_NON_ALNUM.sub(" ", str(text or "").lower()).split())


def _trigrams(text: str) -> set[str]:
    padded = f"  {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def _digits(text: Any) -> str:
    return "".join(ch for ch in str(text or "") if ch.isdigit())[-7:]


def parse_records(data: bytes) -> list[dict[str, Any]]:
    """The records of a JSON Lines dataset; ``ValueError`` if a line is not an object with
    ``id`` and ``entity``."""
    records = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        doc = json.loads(line)
        if not isinstance(doc, dict) or "id" not in doc or "entity" not in doc:
            raise ValueError(f"line {number}: a record needs 'id' and 'entity'")
        records.append(doc)
    return records


def candidate_pairs(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Index pairs sharing a block key, each once, in a deterministic order."""
    blocks: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        tokens = _norm(record.get("name")).split()
        if tokens:
            blocks.setdefault("n:" + tokens[-1][0], []).append(index)
        phone = _digits(record.get("phone"))
        if len(phone) >= 4:
            blocks.setdefault("p:" + phone[-4:], []).append(index)
    pairs = {pair for members in blocks.values() for pair in combinations(members, 2)}
    return sorted(pairs)


def features(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[float]:
    """The :data:`FEATURES` of one record pair."""
    name_a, name_b = _norm(a.get("name")), _norm(b.get("name"))
    email_a, email_b = _norm(a.get("email")), _norm(b.get("email"))
    local_a = email_a.split(" ")[0] if email_a else ""
    local_b = email_b.split(" ")[0] if email_b else ""
    phone_a, phone_b = _digits(a.get("phone")), _digits(b.get("phone"))
    city_a, city_b = _norm(a.get("city")), _norm(b.get("city"))
    year_a, year_b = a.get("birth_year"), b.get("birth_year")
    years_close = isinstance(year_a, int) and isinstance(year_b, int) and abs(year_a - year_b) <= 1
    return [
        _jaccard(_trigrams(name_a), _trigrams(name_b)),
        _jaccard(set(name_a.split()), set(name_b.split())),
        float(bool(email_a) and email_a == email_b),
        _jaccard(_trigrams(local_a), _trigrams(local_b)),
        float(bool(phone_a) and phone_a == phone_b),
        float(bool(city_a) and city_a == city_b),
        float(years_close),
    ]


def _held_out(a: Mapping[str, Any], b: Mapping[str, Any], mod: int) -> bool:
    key = "|".join(sorted((str(a["id"]), str(b["id"])))).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % mod == 0


def train(
    x: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float, l2: float
) -> tuple[np.ndarray, float]:
    """Logistic regression weights and bias by full-batch gradient descent from zero."""
    weights = np.zeros(x.shape[1])
    bias = 0.0
    if not len(y):
        return weights, bias
    n = len(y)
    for _ in range(epochs):
        p = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
        error = p - y
        weights -= learning_rate * (x.T @ error / n + l2 * weights)
        bias -= learning_rate * float(error.mean())
    return weights, bias


def _scores(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: float) -> dict[str, Any]:
    predicted = (1.0 / (1.0 + np.exp(-(x @ weights + bias)))) >= 0.5
    truth = y >= 0.5
    tp = int(np.sum(predicted & truth))
    fp = int(np.sum(predicted & ~truth))
    fn = int(np.sum(~predicted & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "pairs": len(y),
        "positives": int(truth.sum()),
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "accuracy": round(float(np.mean(predicted == truth)) if len(y) else 0.0, 6),
    }


def run(inputs: Mapping[str, bytes], params: Mapping[str, Any], out_dir: Path) -> None:
    """Train on every input dataset's records (ids must be unique across datasets)."""
    records = [r for dataset_id in sorted(inputs) for r in parse_records(inputs[dataset_id])]
    holdout_mod = int(params.get("holdout_mod", 5))
    rows, labels, held = [], [], []
    for i, j in candidate_pairs(records):
        a, b = records[i], records[j]
        rows.append(features(a, b))
        labels.append(1.0 if a["entity"] == b["entity"] else 0.0)
        held.append(_held_out(a, b, holdout_mod))
    x = np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    y = np.array(labels, dtype=np.float64)
    mask = np.array(held, dtype=bool)
    weights, bias = train(
        x[~mask],
        y[~mask],
        epochs=int(params.get("epochs", 400)),
        learning_rate=float(params.get("learning_rate", 0.5)),
        l2=float(params.get("l2", 0.001)),
    )
    model = {
        "kind": "logistic-regression",
        "features": list(FEATURES),
        "weights": [round(float(w), 8) for w in weights],
        "bias": round(bias, 8),
        "threshold": 0.5,
    }
    metrics = {
        "records": len(records),
        "train": _scores(x[~mask], y[~mask], weights, bias),
        "holdout": _scores(x[mask], y[mask], weights, bias),
    }
    (out_dir / "model.json").write_text(json.dumps(model, indent=1, sort_keys=True))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
