"""`vae-gradcam`: Liu et al.'s latent-sum Grad-CAM, checked against captum's LayerGradCam, for batch independence,
one backward pass, degenerate maps, its options, and on a planted defect that a trained VAE must localise."""

from __future__ import annotations

import itertools
import re

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

import xgen
import xgen.plugins
from xgen.testing import TinyVAE, check_explainer
from xgen_plugins.conv_vae import vae_loss
from xgen_plugins.conv_vae.module import ConvVAE

pytestmark = pytest.mark.usefixtures("one_thread")


# -- models and the independent reference -----------------------------------------------------------------------------


def seeded(build, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build().eval()


def conv_vae(latent: int = 5, channels: int = 3, height: int = 16, width: int = 12, seed: int = 0) -> ConvVAE:
    """The conv-vae architecture at a small size; non-square and 3 channels, so H/W or channel mix-ups show."""
    return seeded(lambda: ConvVAE(channels, height, width, latent=latent, hidden=8), seed)


def tiny_vae(latent: int = 4) -> TinyVAE:
    return TinyVAE(channels=1, size=16, latent=latent, seed=0).eval()


MODELS = {"tiny": tiny_vae, "conv": conv_vae}


def images_for(module: nn.Module, n: int = 3, seed: int = 0) -> torch.Tensor:
    shape = (3, 16, 12) if isinstance(module, ConvVAE) else (1, 16, 16)
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def latent_size(module: nn.Module) -> int:
    return module.fc_mu.out_features


def reference_postprocess(cam: torch.Tensor, size: tuple[int, int], sign: str, normalize: str) -> torch.Tensor:
    """cam: (N, K, h, w) layer attributions -> (N, K, H, W): captum's bilinear interpolation, sign, min-max."""
    up = LayerAttribution.interpolate(cam.detach(), size, "bilinear")
    if sign == "abs":
        up = torch.abs(up)
    elif sign == "relu":
        up = torch.where(up > 0, up, torch.zeros_like(up))
    if normalize == "none":
        return up
    out = torch.zeros_like(up)
    for i in range(up.shape[0]):
        for k in range(up.shape[1]):
            low, high = up[i, k].min(), up[i, k].max()
            if high - low > 1e-5 * up[i, k].abs().max():  # flat up to float32 rounding: stays 0
                out[i, k] = (up[i, k] - low) / (high - low)
    return out


def captum_cam(module: nn.Module, x: torch.Tensor, layer: str = "encoder.2", target: int | None = None) -> torch.Tensor:
    """captum's LayerGradCam of sum_i mu_i (target None) or of mu_target: (N, 1, h, w), before interpolation."""
    if target is None:
        gradcam = LayerGradCam(lambda t: module.encode(t)[0].sum(1), module.get_submodule(layer))
        return gradcam.attribute(x)
    gradcam = LayerGradCam(lambda t: module.encode(t)[0], module.get_submodule(layer))
    return gradcam.attribute(x, target=target)


def explain(module: nn.Module, x: torch.Tensor, **options) -> xgen.Explanation:
    return xgen.explain(module, x, plugin="vae-gradcam", **options)


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 0.0) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


# -- equality with captum ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", ["minmax", "none"])
@pytest.mark.parametrize("sign", ["abs", "relu", "none"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_the_map_equals_captum_layer_gradcam_of_the_latent_sum(kind, sign, normalize):
    module = MODELS[kind]()
    x = images_for(module)
    got = explain(module, x, sign=sign, normalize=normalize)
    expected = reference_postprocess(captum_cam(module, x), x.shape[2:], sign, normalize)[:, 0]
    assert got.anomaly_map.shape == (x.shape[0], *x.shape[2:])
    close(got.anomaly_map, expected)
    assert got.details["layer"] == "encoder.2"
    assert got.score is None and "per_dim" not in got.details


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_dim_explains_one_latent_mean_like_captum_with_that_target(kind):
    module = MODELS[kind]()
    x = images_for(module)
    maps = []
    for dim in range(latent_size(module)):
        got = explain(module, x, dim=dim, sign="none", normalize="none").anomaly_map
        close(got, reference_postprocess(captum_cam(module, x, target=dim), x.shape[2:], "none", "none")[:, 0])
        maps.append(got)
    for a, b in itertools.pairwise(maps):
        assert not torch.allclose(a, b), "two latent dimensions gave the same map"
    # Grad-CAM is linear in the score: the maps of the dimensions add up to the map of their sum.
    close(torch.stack(maps).sum(0), explain(module, x, sign="none", normalize="none").anomaly_map)
    got = explain(module, x, dim=1).anomaly_map
    close(got, reference_postprocess(captum_cam(module, x, target=1), x.shape[2:], "abs", "minmax")[:, 0])


@pytest.mark.parametrize(("sign", "normalize"), [("abs", "minmax"), ("none", "none"), ("relu", "minmax")])
@pytest.mark.parametrize("layer", ["encoder.2", "encoder.0"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_per_dim_equals_captum_looping_over_every_latent_target(kind, layer, sign, normalize):
    module = MODELS[kind]()
    x = images_for(module)
    options = {"sign": sign, "normalize": normalize, "layer": layer}
    got = explain(module, x, per_dim=True, **options)
    d = latent_size(module)
    cams = torch.cat([captum_cam(module, x, layer, target=k) for k in range(d)], dim=1)
    expected = reference_postprocess(cams, x.shape[2:], sign, normalize)
    assert got.details["per_dim"].shape == (x.shape[0], d, *x.shape[2:])
    assert got.details["per_dim"].dtype == torch.float32
    close(got.details["per_dim"], expected)
    close(got.anomaly_map, explain(module, x, **options).anomaly_map)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_dim_with_per_dim_maps_that_dimension_and_still_returns_every_dimension(kind):
    module = MODELS[kind]()
    x = images_for(module)
    both = explain(module, x, dim=2, per_dim=True)
    close(both.anomaly_map, explain(module, x, dim=2).anomaly_map)
    close(both.details["per_dim"], explain(module, x, per_dim=True).details["per_dim"])
    close(both.anomaly_map, both.details["per_dim"][:, 2])
    assert not torch.allclose(both.anomaly_map, explain(module, x).anomaly_map, atol=1e-3)


def test_options_given_as_cli_strings_mean_the_same():
    module = tiny_vae()
    x = images_for(module)
    typed = explain(module, x, dim=1, per_dim=True, sign="relu")
    strings = explain(module, x, dim="1", per_dim="true", sign="relu")
    assert torch.equal(typed.anomaly_map, strings.anomaly_map)


# -- batch independence and one backward pass -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"per_dim": True},
        {"dim": 3},
        {"grad_norm": "l2", "normalize": "none"},
        {"sign": "none", "normalize": "none"},
    ],
    ids=["default", "per_dim", "dim", "l2-raw", "raw"],
)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_map_in_a_batch_of_8_equals_the_map_of_that_image_alone(kind, options):
    module = MODELS[kind]()
    x = images_for(module, n=8, seed=1)
    x[5] = x[5] * 0.2  # a dim image in the batch: a batch-wide normalisation would change the others' maps
    batch = explain(module, x, **options)
    for i in range(8):
        alone = explain(module, x[i : i + 1], **options)
        close(alone.anomaly_map[0], batch.anomaly_map[i])
        if "per_dim" in options:
            close(alone.details["per_dim"][0], batch.details["per_dim"][i])


class BackwardCounter:
    """Counts the backward passes run through torch.autograd.grad and torch.autograd.backward."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        grad, backward = torch.autograd.grad, torch.autograd.backward

        def counted_grad(*args, **kwargs):
            self.calls.append("grad-batched" if kwargs.get("is_grads_batched") else "grad")
            return grad(*args, **kwargs)

        def counted_backward(*args, **kwargs):
            self.calls.append("backward")
            return backward(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", counted_grad)
        monkeypatch.setattr(torch.autograd, "backward", counted_backward)

    def count(self, fn) -> list[str]:
        self.calls.clear()
        fn()
        return list(self.calls)


@pytest.mark.parametrize("options", [{}, {"dim": 2}, {"grad_norm": "l2"}], ids=["sum", "dim", "l2"])
def test_the_map_of_a_whole_batch_takes_exactly_one_backward_pass(monkeypatch, options):
    counter = BackwardCounter(monkeypatch)
    module = conv_vae()
    for n in (1, 8):
        x = images_for(module, n=n)
        assert counter.count(lambda x=x: explain(module, x, **options)) == ["grad"], f"batch of {n}"


@pytest.mark.parametrize("layer", ["encoder.2", "encoder.0"])
def test_per_dim_does_not_loop_over_latent_dimensions_or_images(monkeypatch, layer):
    """The number of backward passes is the same for 2 and 16 latent dimensions and for 1 and 8 images, and at
    most one of them is batched over the dimensions (encoder.0 takes the generic path: exactly that one pass;
    encoder.2 is followed by ReLU-Flatten-Linear, where xgen's fast path adds a few cheap checked passes)."""
    counter = BackwardCounter(monkeypatch)
    seen = set()
    for latent in (2, 16):
        module = conv_vae(latent=latent)
        for n in (1, 8):
            x = images_for(module, n=n)
            calls = counter.count(lambda module=module, x=x: explain(module, x, per_dim=True, layer=layer))
            seen.add(tuple(calls))
    assert len(seen) == 1, f"the backward passes depend on the latent size or the batch: {seen}"
    (calls,) = seen
    assert calls.count("grad-batched") <= 1 and len(calls) <= 4, calls
    if layer == "encoder.0":
        assert calls == ("grad-batched",)


# -- degenerate maps and the output contract --------------------------------------------------------------------------


def constant_layer_vae() -> TinyVAE:
    """encoder.2 has zero weights and a non-zero bias: its output is the same at every position."""
    module = tiny_vae()
    with torch.no_grad():
        module.encoder[2].weight.zero_()
        module.encoder[2].bias.copy_(torch.linspace(-1.0, 1.0, module.encoder[2].bias.numel()))
    return module


def zero_vae() -> TinyVAE:
    module = tiny_vae()
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


@pytest.mark.parametrize("sign", ["abs", "relu", "none"])
@pytest.mark.parametrize("build", [constant_layer_vae, zero_vae], ids=["constant-layer", "zero-weights"])
def test_a_flat_map_normalises_to_zeros_never_nan(build, sign):
    module = build()
    x = images_for(module, n=4)
    raw = explain(module, x, sign=sign, normalize="none").anomaly_map
    assert torch.isfinite(raw).all()
    assert torch.allclose(raw, raw[:, :1, :1].expand_as(raw)), "the test model should give a flat map"
    for options in ({}, {"per_dim": True}, {"dim": 0}):
        got = explain(module, x, sign=sign, **options)
        assert got.anomaly_map.dtype == torch.float32
        assert torch.equal(got.anomaly_map, torch.zeros(4, 16, 16))
        if "per_dim" in options:
            assert torch.equal(got.details["per_dim"], torch.zeros(4, 4, 16, 16))
    if build is constant_layer_vae and sign == "none":
        assert raw.abs().max() > 0, "the constant map is not zero before normalisation"


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_minmax_maps_are_float32_at_input_size_spanning_zero_to_one(kind):
    module = MODELS[kind]()
    x = images_for(module, n=5)
    got = explain(module, x)
    assert got.anomaly_map.shape == (5, *x.shape[2:])
    assert got.anomaly_map.dtype == torch.float32
    assert not got.anomaly_map.requires_grad
    flat = got.anomaly_map.flatten(1)
    assert (flat >= 0).all() and (flat <= 1).all()
    close(flat.min(1).values, torch.zeros(5))
    close(flat.max(1).values, torch.ones(5))


def test_explaining_leaves_the_module_unchanged():
    module = conv_vae()
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    explain(module, images_for(module), per_dim=True)
    assert module.training
    assert all(p.grad is None for p in module.parameters())
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


# -- option errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_dim", [False, True])
def test_a_dim_beyond_the_latent_size_names_the_latent_size(per_dim):
    module = tiny_vae(latent=4)
    with pytest.raises(xgen.XgenError, match=r"dim=4 is out of range: the latent has 4 dimensions \(0-3\)"):
        explain(module, images_for(module), dim=4, per_dim=per_dim)
    explain(module, images_for(module), dim=3, per_dim=per_dim)


def test_a_negative_dim_is_refused_before_any_work():
    with pytest.raises(xgen.XgenError, match=r"dim must be a latent index >= 0, got -1"):
        explain(tiny_vae(), images_for(tiny_vae()), dim=-1)


def test_an_unknown_sign_lists_the_choices():
    with pytest.raises(xgen.XgenError, match=r"option 'sign' .* 'square'.*'abs', 'relu', 'none'"):
        explain(tiny_vae(), images_for(tiny_vae()), sign="square")


def test_per_dim_with_l2_gradient_normalisation_is_refused():
    with pytest.raises(xgen.XgenError, match=r"cannot combine per_dim=true with grad_norm=l2"):
        explain(tiny_vae(), images_for(tiny_vae()), per_dim=True, grad_norm="l2")


def test_an_unknown_option_suggests_the_close_one():
    with pytest.raises(xgen.XgenError, match=r"has no option 'per_dims'\. Did you mean 'per_dim'\?"):
        explain(tiny_vae(), images_for(tiny_vae()), per_dims=True)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_an_explicit_layer_is_explained_instead_of_the_default(kind):
    module = MODELS[kind]()
    x = images_for(module)
    default = explain(module, x, sign="none", normalize="none")
    first = explain(module, x, layer="encoder.0", sign="none", normalize="none")
    assert first.details["layer"] == "encoder.0"
    assert not torch.allclose(first.anomaly_map, default.anomaly_map, atol=1e-4)
    close(
        first.anomaly_map, reference_postprocess(captum_cam(module, x, "encoder.0"), x.shape[2:], "none", "none")[:, 0]
    )


def test_an_unknown_layer_is_a_wrap_error_with_did_you_mean():
    module = tiny_vae()
    with pytest.raises(xgen.WrapError, match=r"no layer 'encoder\.22'\. Did you mean 'encoder\.2'\?") as info:
        explain(module, images_for(module), layer="encoder.22")
    assert "encoder.0, encoder.2" in str(info.value)


@pytest.mark.parametrize("per_dim", [False, True])
@pytest.mark.parametrize(("layer", "shape"), [("fc_mu", "(3, 4)"), ("encoder.4", "(3, 128)")])
def test_a_layer_without_a_spatial_map_is_a_wrap_error(layer, shape, per_dim):
    module = tiny_vae()
    with pytest.raises(xgen.WrapError, match=re.escape(f"layer '{layer}' outputs shape {shape}, not (N, C, h, w)")):
        explain(module, images_for(module), layer=layer, per_dim=per_dim)


# -- gradient normalisation ------------------------------------------------------------------------------------------


def layer_gradient(module: nn.Module, x: torch.Tensor, layer: str = "encoder.2") -> tuple[torch.Tensor, torch.Tensor]:
    """(activations, d sum(mu) / d activations) of `layer`, computed here with a plain forward hook."""
    store = {}

    def hook(_module, _inputs, output):
        output.retain_grad()
        store["a"] = output

    handle = module.get_submodule(layer).register_forward_hook(hook)
    try:
        module.encode(x)[0].sum().backward()
    finally:
        handle.remove()
    module.zero_grad(set_to_none=True)
    return store["a"].detach(), store["a"].grad


@pytest.mark.parametrize("sign", ["abs", "none"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_l2_gradient_normalisation_divides_each_map_by_its_own_gradient_rms(kind, sign):
    module = MODELS[kind]()
    x = images_for(module, n=4)
    x[0] *= 0.1  # images with very different gradient scales
    _, grads = layer_gradient(module, x)
    rms = grads.pow(2).mean(dim=(1, 2, 3)).sqrt()  # per image, as xgen documents (the official code: per batch)
    assert rms.max() / rms.min() > 1.01, "the test images should have different gradient scales"
    plain = explain(module, x, sign=sign, normalize="none").anomaly_map
    l2 = explain(module, x, sign=sign, normalize="none", grad_norm="l2").anomaly_map
    close(l2, plain / (rms + 1e-5)[:, None, None], atol=1e-6, rtol=1e-5)
    close(explain(module, x, sign=sign, grad_norm="l2").anomaly_map, explain(module, x, sign=sign).anomaly_map)


# -- a planted defect -------------------------------------------------------------------------------------------------

SIZE, SQUARE = 32, 8
#: Four corners (the squares touch the image border), four inner positions and the centre.
POSITIONS = [(0, 0), (0, 24), (24, 0), (24, 24), (6, 6), (6, 18), (18, 6), (18, 18), (12, 12)]


def trained_on_blank_images(seed: int, steps: int = 10) -> ConvVAE:
    """The conv-vae architecture (hidden 16, latent 8) after `steps` Adam steps of BCE + KL on black images."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = ConvVAE(1, SIZE, SIZE, latent=8, hidden=16)
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
        blank = torch.zeros(8, 1, SIZE, SIZE)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            recon, mu, logvar = module(blank)
            vae_loss(recon, blank, mu, logvar).backward()
            optimizer.step()
    return module.eval()


def planted() -> tuple[torch.Tensor, torch.Tensor]:
    """Black images with one white SQUARE x SQUARE square each, at POSITIONS, and the masks of the squares."""
    x = torch.zeros(len(POSITIONS), 1, SIZE, SIZE)
    masks = torch.zeros(len(POSITIONS), SIZE, SIZE, dtype=torch.bool)
    for i, (r, c) in enumerate(POSITIONS):
        x[i, :, r : r + SQUARE, c : c + SQUARE] = 1.0
        masks[i, r : r + SQUARE, c : c + SQUARE] = True
    return x, masks


@pytest.fixture(scope="module")
def blank_trained() -> dict[int, ConvVAE]:
    """Seed 0 ends with a negative latent sum on black images, seed 1 with a positive one."""
    return {seed: trained_on_blank_images(seed) for seed in (0, 1)}


def latent_sum(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.encode(x)[0].sum(1)


def peaks(maps: torch.Tensor) -> list[tuple[int, int]]:
    return [divmod(int(i), maps.shape[-1]) for i in maps.flatten(1).argmax(1)]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_square_planted_in_blank_images_is_where_the_default_map_peaks(blank_trained, seed):
    module = blank_trained[seed]
    x, masks = planted()
    maps = explain(module, x).anomaly_map  # the defaults: encoder.2, sign=abs, min-max
    for (r, c), (pr, pc), mask, m in zip(POSITIONS, peaks(maps), masks, maps, strict=True):
        assert r <= pr < r + SQUARE and c <= pc < c + SQUARE, f"square at {(r, c)}, peak at {(pr, pc)}"
        inside, outside = m[mask].mean(), m[~mask].mean()
        assert inside > 1.5 * outside, f"square at {(r, c)}: mean {inside:.3f} inside vs {outside:.3f} outside"
    # The peak follows the square: opposite corners give peaks in opposite quadrants.
    (tl_r, tl_c), (br_r, br_c) = peaks(maps)[0], peaks(maps)[3]
    assert tl_r < SIZE // 2 and tl_c < SIZE // 2 and br_r >= SIZE // 2 and br_c >= SIZE // 2


def test_abs_localises_whatever_the_sign_of_the_latent_sum_and_relu_only_when_it_is_positive(blank_trained):
    """The map's sign is the direction in which the defect moves sum_i mu_i, which training does not fix: seed 0
    ends with a falling sum, seed 1 with a rising one. The paper's ReLU then keeps nothing for seed 0, while the
    official code's absolute value (the default) localises for both."""
    x, _ = planted()
    falling, rising = blank_trained[0], blank_trained[1]
    assert (latent_sum(falling, x) < 0).all() and (latent_sum(rising, x) > 0).all()
    signed = explain(falling, x, sign="none", normalize="none").anomaly_map
    for (r, c), (pr, pc) in zip(POSITIONS, peaks(-signed), strict=True):
        assert r <= pr < r + SQUARE and c <= pc < c + SQUARE, "the square is the minimum of the signed map"
    assert torch.equal(explain(falling, x, sign="relu").anomaly_map, torch.zeros(len(POSITIONS), SIZE, SIZE))
    for (r, c), (pr, pc) in zip(POSITIONS, peaks(explain(rising, x, sign="relu").anomaly_map), strict=True):
        assert r <= pr < r + SQUARE and c <= pc < c + SQUARE


# -- conformance ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{}, {"per_dim": True}, {"dim": 1, "sign": "relu"}, {"grad_norm": "l2", "normalize": "none"}],
    ids=["default", "per_dim", "dim-relu", "l2-raw"],
)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_check_explainer_passes(kind, options):
    module = MODELS[kind]()
    first = check_explainer("vae-gradcam", module, images_for(module, n=4), **options)
    assert first.anomaly_map.shape[0] == 4


def test_a_conv_vae_built_by_its_architecture_passes_check_explainer():
    architecture = xgen.plugins.lookup("architecture", "conv-vae")(latent=4, hidden=16)
    module = seeded(lambda: architecture.build((1, 16, 16)))
    model = xgen.wrap(module, **architecture.wrap_arguments(module))
    check_explainer("vae-gradcam", model, torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2)))
