"""`factor-vae`: FactorVAE's two updates, the permutation, eq. 1, and an attention disentanglement loss that trains
the encoder through the Grad-CAM weights."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xgen
from xgen.plugins import lookup
from xgen_plugins.dsprites import DSprites
from xgen_plugins.factor_vae.attention import attention_maps, dimension_cams, latent_gradcams, latent_gradcams_loop
from xgen_plugins.factor_vae.losses import attention_disentanglement, map_overlap, permute_dims

pytestmark = pytest.mark.usefixtures("one_thread")


def _arch(**options):
    return lookup("architecture", "factor-vae")(**options)


def _setup(size: int = 32, seed: int = 0, **options):
    torch.manual_seed(seed)
    arch = _arch(**options)
    module = arch.build((1, size, size))
    x = torch.rand(8, 1, size, size, generator=torch.Generator().manual_seed(seed)).round()
    return arch, module, x


@given(st.integers(2, 40), st.integers(1, 6), st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_permute_dims_shuffles_each_column_across_the_batch_and_keeps_its_values(n, d, seed):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    p = permute_dims(z, torch.Generator().manual_seed(seed + 1))
    assert p.shape == z.shape
    for j in range(d):
        assert torch.equal(p[:, j].sort().values, z[:, j].sort().values)


def test_permute_dims_mixes_rows_with_independent_permutations_per_column():
    z = torch.arange(64.0).view(64, 1).repeat(1, 4)
    p = permute_dims(z, torch.Generator().manual_seed(0))
    assert not torch.equal(p[:, 0], p[:, 1])
    assert (p[:, 0] != z[:, 0]).float().mean() > 0.9


def test_map_overlap_is_one_for_identical_maps_and_zero_for_disjoint_ones():
    a = torch.rand(3, 5, 5) + 0.1
    assert torch.allclose(map_overlap(a, a), torch.ones(3))
    b = torch.zeros(5, 5)
    c = torch.zeros(5, 5)
    b[:2] = torch.rand(2, 5) + 0.1
    c[3:] = torch.rand(2, 5) + 0.1
    assert map_overlap(b, c).item() == 0.0
    assert map_overlap(torch.zeros(4, 4), torch.zeros(4, 4)).item() == 0.0
    half = torch.zeros(2, 4)
    half[0] = 1.0
    assert map_overlap(half, torch.ones(2, 4)).item() == pytest.approx(2 * 4 / 12)


def test_pair_rules_pick_the_pairs_they_name():
    maps = torch.zeros(1, 3, 1, 4)
    maps[0, 0, 0, :2] = 1.0
    maps[0, 1, 0, :2] = 1.0
    maps[0, 2, 0, 2:] = 5.0
    assert attention_disentanglement(maps, "consecutive").item() == pytest.approx((1 + 0) / 2)
    assert attention_disentanglement(maps, "all").item() == pytest.approx((1 + 0 + 0) / 3)
    assert attention_disentanglement(maps, "top2").item() == pytest.approx(0.0)
    maps[0, 2] = 0.1
    assert attention_disentanglement(maps, "top2").item() == pytest.approx(1.0)


def test_map_scaling_makes_eq_1_compare_where_maps_respond_not_how_strongly():
    a = torch.rand(1, 1, 6, 6)
    b = torch.rand(1, 1, 6, 6)
    pair = torch.cat([a, b], dim=1)
    shrunk = torch.cat([a, b * 1e-3], dim=1)
    raw, raw_shrunk = (attention_disentanglement(attention_maps(p, "abs", "none"), "all") for p in (pair, shrunk))
    assert raw_shrunk < 0.01 < raw
    for scale in ("max", "sum"):
        kept = [float(attention_disentanglement(attention_maps(p, "abs", scale), "all")) for p in (pair, shrunk)]
        assert kept[0] == pytest.approx(kept[1], rel=1e-4)
    signed = torch.stack([torch.ones(4, 4), -torch.ones(4, 4)])[None]
    assert float(attention_disentanglement(attention_maps(signed, "abs", "max"), "all")) == pytest.approx(1.0)
    assert attention_disentanglement(attention_maps(signed, "relu", "max"), "all") == 0.0


def test_batched_maps_equal_one_backward_pass_per_dimension():
    _, module, x = _setup()
    with xgen.gradients.capture(module.encoder[0], cut=False) as seen:
        _, mu, _, _ = module(x)
    batched = latent_gradcams(mu, seen[0], "full")
    loop = latent_gradcams_loop(mu, seen[0], "full")
    assert batched.shape == (8, 10, 16, 16)
    assert torch.allclose(batched, loop, atol=1e-6, rtol=1e-4)


def _first_conv_grad(gradient: str, ad_weight: float = 1.0) -> torch.Tensor:
    _, module, x = _setup(ad_weight=ad_weight, ad_gradient=gradient)
    with xgen.gradients.capture(module.encoder[0], cut=False) as seen:
        _, mu, _, _ = module(x)
    maps = attention_maps(latent_gradcams(mu, seen[0], gradient))
    loss = attention_disentanglement(maps, "top2")
    grads = torch.autograd.grad(loss, [module.encoder[0].weight, module.encoder[6].weight], allow_unused=True)
    return tuple(torch.zeros(1) if g is None else g for g in grads)


def test_the_loss_trains_the_encoder_and_full_gradients_also_reach_the_layers_above_the_map():
    full_first, full_last = _first_conv_grad("full")
    act_first, act_last = _first_conv_grad("activations")
    assert full_first.abs().sum() > 0 and act_first.abs().sum() > 0
    # The layers after the attention layer reach L_AD only through the Grad-CAM weights, i.e. only with create_graph.
    assert full_last.abs().sum() > 0
    assert act_last.abs().sum() == 0
    # In a ReLU encoder d mu / dA is piecewise constant in A, so the weights' second-order path adds nothing to the
    # first conv's own gradient: both choices give it the same update.
    assert torch.allclose(full_first, act_first, atol=1e-7)


def test_ad_weight_changes_the_encoder_update_and_nothing_else_differs():
    updates = {}
    for weight in (0.0, 1.0):
        arch, module, x = _setup(ad_weight=weight, gamma=10.0)
        optimizers = arch.configure_optimizers(module)
        before = module.encoder[0].weight.detach().clone()
        torch.manual_seed(5)
        logged = arch.training_step(module, x, optimizers)
        updates[weight] = module.encoder[0].weight.detach() - before
        assert ("ad" in logged) == (weight > 0)
    assert not torch.allclose(updates[0.0], updates[1.0])


def test_the_discriminator_step_changes_only_the_discriminator_and_the_vae_step_only_the_vae():
    arch, module, x = _setup(gamma=10.0)
    vae_optimizer, d_optimizer = arch.configure_optimizers(module)
    vae_ids = {id(p) for group in vae_optimizer.param_groups for p in group["params"]}
    d_ids = {id(p) for group in d_optimizer.param_groups for p in group["params"]}
    assert not vae_ids & d_ids
    assert d_ids == {id(p) for p in module.tc_discriminator.parameters()}
    assert vae_ids | d_ids == {id(p) for p in module.parameters()}
    # The VAE's backward pass leaves no gradient on the discriminator, and the discriminator's none on the VAE.
    loss, _, _ = arch.vae_loss(module, x)
    module.tc_discriminator.requires_grad_(False)
    loss.backward()
    module.tc_discriminator.requires_grad_(True)
    assert all(p.grad is None for p in module.tc_discriminator.parameters())
    module.zero_grad(set_to_none=True)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    arch.training_step(module, x, [torch.optim.SGD([torch.zeros(1, requires_grad=True)]), d_optimizer])
    for name, p in module.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        assert changed == name.startswith("tc_discriminator."), name


def test_bad_options_get_one_sentence():
    with pytest.raises(xgen.XgenError, match=r"ad_layer to one of encoder\.0, encoder\.2"):
        _arch(ad_weight=1.0, ad_layer="decoder.0").build((1, 64, 64))
    with pytest.raises(xgen.XgenError, match="divisible by 16"):
        _arch().build((1, 28, 28))
    with pytest.raises(xgen.XgenError, match=r"expected one of 'top2'"):
        _arch(ad_pairs="random")


def test_steps_train_on_fresh_dsprites_batches_and_vae_gradcam_explains_the_result(tmp_path):
    data = DSprites(train_n=64, test_n=16)
    records = []
    model = xgen.train(
        "factor-vae",
        data,
        steps=4,
        batch_size=16,
        device="cpu",
        options={"ad_weight": 1.0, "latent": 4},
        log_every=2,
        on_log=lambda record, m: records.append((record, m.module.training)),
        out=tmp_path / "fvae.pt",
    )
    training = model.metadata["training"]
    assert training["steps"] == 4 and training["fresh_batches"] is True
    assert [r["step"] for r, _ in records] == [2, 4]
    assert all(not was_training for _, was_training in records)
    assert {"recon", "kl", "tc", "ad", "d_loss"} <= set(records[0][0])
    loaded = xgen.load(tmp_path / "fvae.pt")
    x = data.test().images[:3]
    exp = xgen.explain(loaded, x, per_dim=True)
    assert exp.details["per_dim"].shape == (3, 4, 64, 64)
    assert loaded.generate(2, torch.Generator().manual_seed(0)).shape == (2, 1, 64, 64)


def test_batched_and_looped_jacobians_give_the_same_training_step(monkeypatch):
    import xgen_plugins.factor_vae.architecture as factor_vae_architecture

    used = []
    for name in ("latent_gradcams", "latent_gradcams_loop"):
        function = getattr(factor_vae_architecture, name)
        monkeypatch.setattr(
            factor_vae_architecture, name, lambda *a, _f=function, _n=name, **k: used.append(_n) or _f(*a, **k)
        )
    weights = []
    for jacobian in ("batched", "loop", "auto"):
        arch, module, x = _setup(ad_weight=1.0, ad_jacobian=jacobian)
        optimizers = arch.configure_optimizers(module)
        torch.manual_seed(3)
        arch.training_step(module, x, optimizers)
        weights.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
    assert torch.allclose(weights[0], weights[1], atol=1e-6)
    assert torch.equal(weights[1], weights[2]) and used == ["latent_gradcams", *["latent_gradcams_loop"] * 2], (
        "auto takes the loop on the CPU"
    )


def test_dimension_cams_of_a_model_equal_the_training_cams_whatever_the_batch():
    arch, module, x = _setup()
    module.eval()
    model = arch.wrap(module, (1, 32, 32))
    with xgen.gradients.capture(module.encoder[0], cut=False) as seen:
        mu, _ = module.encode(x)
    expected = latent_gradcams(mu, seen[0], "activations").detach()
    got = dimension_cams(model, x, batch_size=3)
    assert got.shape == (8, 10, 16, 16)
    assert torch.allclose(got, expected, atol=1e-6)
