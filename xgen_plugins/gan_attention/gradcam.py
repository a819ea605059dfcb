"""Grad-CAM of a GAN's heads (Selvaraju et al.'s weights alpha_c = mean_{h,w} dS/dA_c, map = sum_c alpha_c A_c at a
layer of the discriminator's trunk): `disc-gradcam` for the discriminator's fake evidence, `q-gradcam` for each code
that the auxiliary network Q of InfoGAN / InfoStyleGAN (../seeds/004, eq. 2-5) recovers from an image."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

import xgen

Sign = Literal["relu", "abs", "none"]
Normalize = Literal["minmax", "none"]

#: Where each explained output lives in Q's raw output: a column (a Bernoulli logit, a Gaussian mean) or a slice of
#: several columns (one categorical code's logits).
Layout = list[tuple[str, int | slice]]


def head_layer(model: xgen.Model, x: torch.Tensor, head: str, run: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """The layer whose Grad-CAM explains `head`: the model's attention layer (`xgen.wrap(layer=...)`) if it runs when
    `run` (the head) runs on x, else the last Conv2d that does. Found once per call with hooks on x's first image, so
    that a model with an encoder is never explained at an encoder layer the head does not read."""
    try:
        declared: str | None = model.attention_layer(x)
    except xgen.XgenError:
        declared = None
    order: list[str] = []
    watched = [(n, m) for n, m in model.module.named_modules() if n and (n == declared or isinstance(m, nn.Conv2d))]
    handles = [m.register_forward_hook(lambda *_, name=n: order.append(name)) for n, m in watched]
    try:
        with torch.no_grad():
            run(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    if declared is not None and declared in order:
        return declared
    convs = [n for n in order if isinstance(model.module.get_submodule(n), nn.Conv2d)]
    if not convs:
        raise xgen.WrapError(
            f"no Conv2d layer runs when the model's {head} runs; pass layer= naming the layer to explain."
        )
    return convs[-1]


def real_fake_logit(out: torch.Tensor, n: int) -> torch.Tensor:
    """The discriminator head's output (N,) or (N, 1) as (N,) logits; anything else is refused in one sentence."""
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n,):
        shape = tuple(getattr(out, "shape", ()))
        raise xgen.WrapError(
            f"the discriminator returned shape {shape} for {n} images; pass xgen.wrap(discriminator=...) a function "
            "that returns one real/fake logit per image, shape (N,)."
        )
    return out


def gradcam(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps at the layer's resolution: weights alpha (N, K, C), activations A (N, C, h, w) -> (N, K, h, w)."""
    return torch.einsum("nkc,nchw->nkhw", weights, activations.detach())


class DiscriminatorGradCAM(xgen.Explainer):
    """Grad-CAM of the discriminator's evidence that an image is fake, s(x) = -log D(x) = softplus(-logit(x)), as an
    anomaly map, with the image score 1 - D(x) = sigmoid(-logit(x)) (issue 13; Paul et al. detect anomalies from the
    discriminator's embeddings, section 4, not from its output, so neither the map nor the score is the paper's).

    With A the activations of the explained layer (default: the model's attention layer, `discriminator.conv` for
    `infostylegan`, if the discriminator runs it, else the last Conv2d the discriminator runs), alpha_c =
    mean_{h,w} ds/dA_c and map = sign(upsample(sum_c alpha_c A_c)), min-max normalised per image. Each image's s
    depends on that image only, so the batch takes one backward pass. The head must return D's logit (N,), not D(x).

    Choices left open, each an option:
    - `evidence`: `log` (default) explains s = -log D(x), the issue's fake evidence; `logit` explains -logit, which
      does not saturate where D is sure an image is real (ds/dA = (1 - D(x)) d(-logit)/dA underflows there). The two
      differ by a positive factor per image, so their min-max normalised maps are equal.
    - `sign`: `relu` (default, Grad-CAM's rule) keeps the regions that raise the fake evidence; `abs` also shows the
      regions that lower it (that look real); `none` keeps the signed map.
    - `normalize`: `minmax` per image (default) or `none` (raw upsampled values).
    """

    name = "disc-gradcam"
    description = "Grad-CAM of a GAN discriminator's fake evidence -log D(x) at its last conv; image score 1 - D(x)."
    requires = frozenset({"discriminator", "layers"})

    layer: str | None = None
    evidence: Literal["log", "logit"] = "log"
    sign: Sign = "relu"
    normalize: Normalize = "minmax"

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        """x: (N, C, H, W) in [0, 1] -> anomaly_map (N, H, W), score (N,) = 1 - D(x); details["layer"], ["logit"]."""
        discriminate = model.head("discriminator")
        layer = self.layer or head_layer(model, x, "discriminator", discriminate)
        logits: list[torch.Tensor] = []

        def fake_evidence(inputs: torch.Tensor) -> torch.Tensor:
            logit = real_fake_logit(discriminate(inputs), inputs.shape[0])
            logits.append(logit.detach())
            return F.softplus(-logit) if self.evidence == "log" else -logit

        grads = xgen.gradients.layer_gradients(model, layer, x, fake_evidence)
        xgen.gradients.check_spatial(grads.activations, layer)
        weights = grads.gradients.mean(dim=(2, 3)).unsqueeze(1)
        cam = gradcam(weights, grads.activations)
        anomaly_map = xgen.gradients.cam_maps(cam, (x.shape[2], x.shape[3]), self.sign, self.normalize)[:, 0]
        logit = logits[0].float()
        return xgen.Explanation(
            anomaly_map=anomaly_map.detach(), score=torch.sigmoid(-logit), details={"layer": layer, "logit": logit}
        )


class DiscriminatorScore(xgen.Scorer):
    """The discriminator's image score alone, 1 - D(x) (the probability the image is fake), without the Grad-CAM:
    `disc-gradcam`'s score for any GAN wrapped with `discriminator=`, as a scorer, so an explainer that gives no
    score (such as `q-gradcam`) can be ranked by it, and `xgen evaluate --scorer disc-score` scores a GAN."""

    name = "disc-score"
    description = "GAN discriminator's image score 1 - D(x), the probability that the image is fake."
    requires = frozenset({"discriminator"})

    def score(self, model: xgen.Model, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1] -> (N,) 1 - D(x) = sigmoid(-logit)."""
        with torch.no_grad():
            logit = real_fake_logit(model.head("discriminator")(x), x.shape[0])
        return torch.sigmoid(-logit.float())


def declared_layout(model: xgen.Model) -> Layout | None:
    """The module's `auxiliary_outputs` (a list of (name, column or slice of Q's output) pairs), checked for form;
    None when the module declares none."""
    declared = getattr(model.module, "auxiliary_outputs", None)
    if declared is None:
        return None
    layout: Layout = []
    for entry in declared:
        name, where = entry if isinstance(entry, (tuple, list)) and len(entry) == 2 else (None, None)
        if not isinstance(name, str) or isinstance(where, bool) or not isinstance(where, (int, slice)):
            raise xgen.WrapError(
                f"the module's auxiliary_outputs entry {entry!r} is not a (name, column or slice) pair; fix the "
                "attribute or delete it to explain every raw Q output."
            )
        layout.append((name, where))
    if not layout:
        raise xgen.WrapError("the module's auxiliary_outputs is empty; declare at least one code or delete it.")
    return layout


def check_layout(layout: Layout, width: int) -> None:
    """Raise WrapError unless every entry's column (or contiguous slice of at least two columns) lies in Q's output
    of `width` columns."""
    for name, where in layout:
        if isinstance(where, int):
            fits = 0 <= where < width
        else:
            start, stop = where.start or 0, width if where.stop is None else where.stop
            fits = where.step in (None, 1) and start >= 0 and start + 2 <= stop <= width
        if not fits:
            raise xgen.WrapError(
                f"the module's auxiliary_outputs gives code '{name}' the columns {where} of Q's {width} outputs; "
                "give one column index or a contiguous slice of at least two (a categorical code's logits)."
            )


class QGradCAM(xgen.Explainer):
    """Attention of each latent code c_i: the Grad-CAM of Q's output for c_i at the layer Q reads (InfoGAN's Q shares
    the discriminator's trunk, so the default layer is the discriminator's last conv: the model's attention layer if Q
    runs it, else the last Conv2d Q runs). The GAN counterpart of `vae-gradcam --set per_dim=true` (issue 13; the
    paper shows traversals, not maps).

    "Q's output for c_i" is the output Q predicts the code from: a Bernoulli code's logit; a continuous code's
    Gaussian mean (never its log-variance); a categorical code's logit of the predicted class, i.e. its largest logit
    (`categorical=logit`, default), or that class's log-probability log softmax (`categorical=log-prob`, evidence for
    the class against the others). The model declares where each code lives in Q's raw output with a module attribute
    `auxiliary_outputs`: a list of (name, column or slice) pairs, one column for a Bernoulli logit or a Gaussian mean,
    a slice of the logits of a categorical code (`infostylegan` declares its codes so). A model without it gets one
    map per raw Q column, named q0, q1, ...

    All K codes' maps come from one batched backward pass (`xgen.gradients.channel_weights`). The anomaly map is the
    Grad-CAM of the sum of the K outputs (the sum of their unnormalised maps, as vae-gradcam sums the latent mean), or
    code `code` alone (an index or a name); `per_dim=true` also returns every code's map in details["per_dim"]
    (N, K, H, W), their names in details["per_dim_names"], which `xgen traverse` draws beside each code's row.
    `sign` (default `abs`: Q's outputs have no anomalous direction, so both signs of influence count) and `normalize`
    as in `vae-gradcam`. No image score: neither the paper nor the issue defines one.
    """

    name = "q-gradcam"
    description = (
        "Grad-CAM of InfoGAN's Q for each latent code at the discriminator's last conv: where each code lives."
    )
    requires = frozenset({"auxiliary", "layers"})

    layer: str | None = None
    code: int | str | None = None
    categorical: Literal["logit", "log-prob"] = "logit"
    sign: Sign = "abs"
    normalize: Normalize = "minmax"
    per_dim: bool = False

    def validate(self) -> None:
        if isinstance(self.code, int) and self.code < 0:
            raise xgen.XgenError(f"q-gradcam option code must be a code index >= 0 or a code name, got {self.code}.")

    def _chosen(self, names: list[str]) -> int | None:
        """The index of option `code` among the explained outputs `names`, or None for their sum."""
        if self.code is None:
            return None
        if isinstance(self.code, int) and self.code < len(names):
            return self.code
        if self.code in names:
            return names.index(str(self.code))
        listed = ", ".join(f"{i} ({name})" for i, name in enumerate(names))
        raise xgen.XgenError(f"q-gradcam option code={self.code} names no code of this model; choose one of {listed}.")

    def _output(self, q: torch.Tensor, where: int | slice) -> torch.Tensor:
        """One code's explained output (N,) from Q's raw output q (N, Q)."""
        if isinstance(where, int):
            return q[:, where]
        logits = q[:, where]
        return (logits.log_softmax(dim=1) if self.categorical == "log-prob" else logits).max(dim=1).values

    def explain(self, model: xgen.Model, x: torch.Tensor) -> xgen.Explanation:
        """x: (N, C, H, W) in [0, 1] -> anomaly_map (N, H, W); details["layer"], ["per_dim_names"] (K names),
        ["outputs"] (N, K) the explained outputs, and ["per_dim"] (N, K, H, W) with per_dim=true."""
        auxiliary = model.head("auxiliary")
        layer = self.layer or head_layer(model, x, "auxiliary", auxiliary)
        declared = declared_layout(model)
        names: list[str] = []

        def code_outputs(inputs: torch.Tensor) -> torch.Tensor:
            q = auxiliary(inputs)
            if not isinstance(q, torch.Tensor) or q.dim() != 2 or q.shape[0] != inputs.shape[0] or q.shape[1] == 0:
                shape = tuple(getattr(q, "shape", ()))
                raise xgen.WrapError(
                    f"the auxiliary head returned shape {shape} for {inputs.shape[0]} images; pass "
                    "xgen.wrap(auxiliary=...) a function that returns Q's raw outputs, shape (N, Q) with Q >= 1."
                )
            layout = declared if declared is not None else [(f"q{i}", i) for i in range(q.shape[1])]
            check_layout(layout, q.shape[1])
            names[:] = [name for name, _ in layout]
            self._chosen(names)
            return torch.stack([self._output(q, where) for _, where in layout], dim=1)

        activations, weights, outputs = xgen.gradients.channel_weights(model, layer, x, code_outputs)
        cams = gradcam(weights, activations)
        chosen = self._chosen(names)
        cam = cams.sum(dim=1, keepdim=True) if chosen is None else cams[:, chosen : chosen + 1]
        size = (x.shape[2], x.shape[3])
        details: dict[str, object] = {"layer": layer, "per_dim_names": list(names), "outputs": outputs.detach()}
        if self.per_dim:
            details["per_dim"] = xgen.gradients.cam_maps(cams, size, self.sign, self.normalize).detach()
        anomaly_map = xgen.gradients.cam_maps(cam, size, self.sign, self.normalize)[:, 0]
        return xgen.Explanation(anomaly_map=anomaly_map.detach(), score=None, details=details)
