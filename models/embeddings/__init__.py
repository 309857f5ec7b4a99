"""Item embeddings: product text through MiniLM (ONNX, offline) combined with ALS factors."""

from models.embeddings.items import ItemVectors, TextToFactors, combine, product_text
from models.embeddings.text import DIMENSION, MODEL_ID, EmbeddingModelUnavailable, TextEncoder

__all__ = [
    "DIMENSION",
    "MODEL_ID",
    "EmbeddingModelUnavailable",
    "ItemVectors",
    "TextEncoder",
    "TextToFactors",
    "combine",
    "product_text",
]
