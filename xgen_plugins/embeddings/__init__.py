"""Scorers `embedding-ocsvm` and `embedding-lof` (seed 004 section 4): one-class detectors on PCA-whitened
embeddings of a model tap, fitted once on normal images and kept in the checkpoint as tensors."""

from __future__ import annotations

from collections.abc import Callable

import xgen
from xgen_plugins.embeddings.scorers import EmbeddingLOF, EmbeddingOCSVM

__all__ = ["EmbeddingLOF", "EmbeddingOCSVM"]


@xgen.hookimpl
def xgen_register_scorers(register: Callable[[type], None]) -> None:
    register(EmbeddingOCSVM)
    register(EmbeddingLOF)
