"""Scorers `embedding-ocsvm` and `embedding-lof`: a one-class detector on PCA-whitened embeddings of a model tap."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch

import xgen
from xgen_plugins.embeddings import detectors, taps, whitening


class _EmbeddingScorer(xgen.Scorer):
    """The tap, the whitening and the fit/score cycle shared by both detectors; subclasses add the detector."""

    requires = frozenset()

    tap: str = "mean"
    components: int | None = None

    def validate(self) -> None:
        if self.components is not None and self.components < 1:
            raise xgen.XgenError(
                f"{self.name} option components must be at least 1 (or none for all), got {self.components}."
            )

    def check_model(self, model: xgen.Model) -> None:
        taps.resolve(model, self.tap, f"scorer '{self.name}'")

    def whitened(self, model: xgen.Model, x: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, k) float64 embeddings whitened with the fitted state."""
        return whitening.apply(taps.embed(model, x, taps.resolve(model, self.tap, self.name)), state)

    def fit(self, model: xgen.Model, x: torch.Tensor) -> dict[str, Any]:
        """x: (n, C, H, W) normal images -> whitening (mean, scale, projection) and the detector's state. Warns when
        every component of a tap with at least as many features as images is kept (`whitening.simplex_warning`)."""
        embeddings = taps.embed(model, x, taps.resolve(model, self.tap, self.name))
        white = whitening.fit(embeddings, self.components)
        note = whitening.simplex_warning(self.name, *embeddings.shape, white["projection"].shape[1])
        if note is not None:
            warnings.warn(note, stacklevel=2)
        return {**white, **self.fit_detector(whitening.apply(embeddings, white))}

    def score(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        state = self.fitted(model)
        return self.detect(self.whitened(model, x, state), state).float()

    def fit_detector(self, w: torch.Tensor) -> dict[str, Any]:
        """w: (n, k) whitened training embeddings -> the detector's state."""
        raise NotImplementedError

    def detect(self, w: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """w: (N, k) whitened embeddings -> (N,) scores, higher = more anomalous."""
        raise NotImplementedError


class EmbeddingOCSVM(_EmbeddingScorer):
    """One-class SVM on PCA-whitened embeddings (seed 004 section 4, Tables 4-5: "IDO", "ICO", "IQO").

    The embedding of `tap` is standardised and PCA-whitened on the normal training images (every component whose
    variance is not numerically zero, see `whitening`), scikit-learn's `OneClassSVM` is fitted on it, and the score
    is -decision_function, recomputed in torch from the support vectors, dual coefficients and intercept kept in
    the checkpoint. What the paper leaves open, with the option and its default (scikit-learn's):
    the tap (`tap`: mean, a head, a dotted layer), how many components (`components`: all, the paper's choice for
    generative models; it used 1,024 for Inception), the kernel (`kernel` rbf, `gamma` "scale" = 1 / (k var(w)),
    `degree` 3 and `coef0` 0 for poly and sigmoid) and the expected outlier fraction `nu` (0.5).
    """

    name = "embedding-ocsvm"
    description = "One-class SVM (scikit-learn) on PCA-whitened embeddings of a model tap (higher = more anomalous)."

    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"
    nu: float = 0.5
    gamma: Literal["scale", "auto"] | float = "scale"
    degree: int = 3
    coef0: float = 0.0

    def validate(self) -> None:
        super().validate()
        if not 0 < self.nu <= 1 or self.degree < 0 or (isinstance(self.gamma, float) and self.gamma <= 0):
            raise xgen.XgenError(
                f"embedding-ocsvm needs 0 < nu <= 1, gamma > 0 (or scale or auto) and degree >= 0, got nu={self.nu}, "
                f"gamma={self.gamma}, degree={self.degree}."
            )

    def fit_detector(self, w: torch.Tensor) -> dict[str, Any]:
        return detectors.ocsvm_fit(w, self.kernel, self.nu, self.gamma, self.degree, self.coef0)

    def detect(self, w: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        return -detectors.ocsvm_decision(w, state)


class EmbeddingLOF(_EmbeddingScorer):
    """Local outlier factor on PCA-whitened embeddings (seed 004 section 4, Tables 4-5: "IDL", "ICL", "IQL").

    The embedding of `tap` is standardised and PCA-whitened on the normal training images as for
    `embedding-ocsvm`; the training points, their k-distances and local reachability densities are kept, and the
    score of an image is its LOF against them, -score_samples of scikit-learn's `LocalOutlierFactor(novelty=True)`,
    recomputed with exact batched nearest neighbours. What the paper leaves open, with the option and its default
    (scikit-learn's): the tap (`tap`), how many components (`components`: all), the neighbours (`n_neighbors` 20,
    clipped to n - 1 on n training images, as scikit-learn does, with a warning) and the Minkowski distance (`p` 2,
    Euclidean).
    """

    name = "embedding-lof"
    description = "Local outlier factor (as scikit-learn) on PCA-whitened embeddings of a model tap."

    n_neighbors: int = 20
    p: float = 2.0

    def validate(self) -> None:
        super().validate()
        if self.n_neighbors < 1 or self.p < 1:
            raise xgen.XgenError(
                f"embedding-lof needs n_neighbors >= 1 and p >= 1, got n_neighbors={self.n_neighbors}, p={self.p}."
            )

    def fit_detector(self, w: torch.Tensor) -> dict[str, Any]:
        return detectors.lof_fit(w, self.n_neighbors, self.p)

    def detect(self, w: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        return detectors.lof(w, state)
