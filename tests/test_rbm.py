"""The stacked-RBM plugin: energies and conditionals against brute force, CD and the greedy schedule, the Gumbel
relaxations (and the one-hot flaw), `rbm-gumbel` against an independent autograd reference, scorers, checkpoints."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch

import xgen
from xgen.testing import TinyVAE, check_explainer
from xgen_plugins.rbm.explainer import gumbel_sum, project
from xgen_plugins.rbm.gumbel import (
    EPS,
    binary_concrete,
    hard_sample,
    logistic_noise,
    relax,
    relaxed_one_hot,
    straight_through,
)
from xgen_plugins.rbm.rbm import RBM
from xgen_plugins.rbm.stack import StackedRBM, default_hidden, grid_shape, layer_for_epoch

DATA = "digits:normal=1,size=8"
UNITS = ["binary", "spin"]


pytestmark = pytest.mark.usefixtures("one_thread")


def seeded_rbm(visible: int, hidden: int, units: str, seed: int = 0, scale: float = 1.0) -> RBM:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        rbm = RBM(visible, hidden, units)
        with torch.no_grad():
            rbm.weight.normal_(0.0, scale)
            rbm.visible_bias.normal_(0.0, scale)
            rbm.hidden_bias.normal_(0.0, scale)
    return rbm


def seeded_stack(input_shape=(3, 4, 5), hidden=(12, 9), units="binary", seed: int = 0) -> StackedRBM:
    """Random weights large enough that every layer matters; 3 channels and a non-square input."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        stack = StackedRBM(input_shape, hidden, units)
        with torch.no_grad():
            for rbm in stack.rbms:
                rbm.weight.normal_(0.0, 0.5)
                rbm.hidden_bias.normal_(0.0, 0.5)
    return stack.eval()


def images(n: int, shape=(3, 4, 5), seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def states(n: int, units: str) -> torch.Tensor:
    """Every configuration of n units, (2^n, n), by brute force."""
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))
    return bits if units == "binary" else 2.0 * bits - 1.0


@pytest.fixture(scope="module")
def trained() -> xgen.Model:
    """A stacked RBM (64-36-25-4) trained on 8x8 digits of 1, 4 epochs per layer (seed 0)."""
    return xgen.train("stacked-rbm", DATA, seed=0, device="cpu", options={"epochs_per_layer": 4})


# -- one RBM against brute force ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("units", UNITS)
def test_free_energy_matches_brute_force_on_a_4_unit_rbm(units):
    rbm = seeded_rbm(4, 3, units)
    v, h = states(4, units), states(3, units)
    energies = torch.stack([rbm.energy(v, h_row.expand(len(v), -1)) for h_row in h], dim=1)
    brute = -torch.logsumexp(-energies, dim=1)
    torch.testing.assert_close(rbm.free_energy(v), brute, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("units", UNITS)
def test_conditionals_and_means_match_brute_force(units):
    rbm = seeded_rbm(4, 3, units)
    v, h = states(4, units), states(3, units)
    joint = torch.exp(-torch.stack([rbm.energy(v, h_row.expand(len(v), -1)) for h_row in h], dim=1))  # (16, 8)
    given_v = joint / joint.sum(dim=1, keepdim=True)
    on = (h == 1).float()
    torch.testing.assert_close(torch.sigmoid(rbm.on_logit(rbm.hidden_logits(v))), given_v @ on, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rbm.mean(rbm.hidden_logits(v)), given_v @ h, rtol=1e-5, atol=1e-6)
    given_h = (joint / joint.sum(dim=0, keepdim=True)).t()  # (8, 16): p(v | h)
    expected = given_h @ (v == 1).float()
    torch.testing.assert_close(torch.sigmoid(rbm.on_logit(rbm.visible_logits(h))), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units", UNITS)
def test_pseudo_likelihood_terms_are_the_brute_force_conditionals(units):
    rbm = seeded_rbm(4, 3, units)
    v, h = states(4, units), states(3, units)
    marginal = torch.exp(-torch.stack([rbm.energy(v, h_row.expand(len(v), -1)) for h_row in h], dim=1)).sum(dim=1)
    x = v[5]
    exact = []
    for i in range(4):
        flipped = x.clone()
        flipped[i] = -x[i] if units == "spin" else 1 - x[i]
        index = [int((v == row).all(dim=1).nonzero()) for row in (x, flipped)]
        exact.append(4 * torch.log(marginal[index[0]] / marginal[index].sum()))
    got = rbm.pseudo_log_likelihood(x.expand(400, -1), torch.Generator().manual_seed(0))
    distances = (got[:, None] - torch.stack(exact)[None]).abs()
    assert distances.min(dim=1).values.max() < 1e-4, "every estimate is one of the exact terms V log P(x_i | x_-i)"
    assert set(distances.argmin(dim=1).tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("units", UNITS)
def test_cd_surrogate_gradient_is_the_cd_update(units):
    rbm = seeded_rbm(6, 5, units)
    v0, vk = torch.rand(7, 6), torch.rand(9, 6)
    if units == "spin":
        v0, vk = 2 * v0 - 1, 2 * vk - 1
    rbm.contrastive_divergence_loss(v0, vk).backward()
    h0, hk = rbm.mean(rbm.hidden_logits(v0)), rbm.mean(rbm.hidden_logits(vk))
    expected = -(v0.t() @ h0 / 7 - vk.t() @ hk / 9)
    torch.testing.assert_close(rbm.weight.grad, expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rbm.hidden_bias.grad, -(h0.mean(0) - hk.mean(0)).detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rbm.visible_bias.grad, -(v0.mean(0) - vk.mean(0)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units", UNITS)
def test_cd1_lowers_the_reconstruction_error_on_a_toy_dataset(units):
    generator = torch.Generator().manual_seed(0)
    prototypes = (torch.rand(3, 16, generator=generator) > 0.5).float()
    data = prototypes[torch.randint(0, 3, (300,), generator=generator)]
    data = (data + (torch.rand(data.shape, generator=generator) < 0.05).float()) % 2
    with torch.random.fork_rng():
        torch.manual_seed(0)
        rbm = RBM(16, 8, units)
        v = rbm.from_on(data)
        before = float(rbm.reconstruction_error(v).mean().detach())
        optimizer = torch.optim.SGD(rbm.parameters(), lr=0.1, momentum=0.5)
        for _ in range(20):
            for batch in v.split(30):
                with torch.no_grad():
                    negative = rbm.gibbs(batch, 1)
                optimizer.zero_grad()
                rbm.contrastive_divergence_loss(batch, negative).backward()
                optimizer.step()
    after = float(rbm.reconstruction_error(v).mean().detach())
    assert after < 0.5 * before, (before, after)


# -- the Gumbel relaxations --------------------------------------------------------------------------------------------


def test_the_relaxed_sample_tends_to_the_hard_sample_as_tau_goes_to_zero():
    logits = 3 * torch.randn(64, 50, generator=torch.Generator().manual_seed(0))
    noise = logistic_noise(logits, torch.Generator().manual_seed(1))
    hard = hard_sample(logits, noise)
    gaps = [float((binary_concrete(logits, noise, tau) - hard).abs().mean()) for tau in (1.0, 0.1, 0.01, 0.001)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3, gaps
    assert 0 < float(hard.mean()) < 1


def test_the_hard_sample_is_bernoulli_with_the_unit_probability():
    logits = torch.full((1, 40_000), 0.7)
    hard = hard_sample(logits, logistic_noise(logits, torch.Generator().manual_seed(0)))
    assert abs(float(hard.mean()) - float(torch.sigmoid(torch.tensor(0.7)))) < 0.01


def test_straight_through_is_hard_forward_and_concrete_backward():
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    noise = logistic_noise(logits, torch.Generator().manual_seed(1))
    sample = straight_through(logits, noise, 0.5)
    assert torch.equal(sample, hard_sample(logits, noise))
    (st,) = torch.autograd.grad(sample.sum(), logits)
    (soft,) = torch.autograd.grad(binary_concrete(logits, noise, 0.5).sum(), logits)
    torch.testing.assert_close(st, soft)


def test_probability_relaxation_is_the_noise_free_mean():
    logits = torch.randn(3, 5)
    torch.testing.assert_close(relax(logits, "probability", 0.5, torch.Generator()), torch.sigmoid(logits))


def test_the_one_hot_relaxation_sums_to_one_so_its_score_is_constant_and_its_gradient_noise():
    """The flaw of the report's public code: a relaxed categorical sample over the hidden units sums to 1."""
    logits = 4 * torch.randn(5, 30, generator=torch.Generator().manual_seed(0))
    sums = relaxed_one_hot(logits, torch.Generator().manual_seed(0), 0.5).sum(dim=1)
    torch.testing.assert_close(sums, torch.ones(5))

    stack, x = seeded_stack(), images(2).requires_grad_(True)
    flawed = gumbel_sum(stack, x, "one-hot", 0.5, 0)
    (flawed_grad,) = torch.autograd.grad(flawed.sum(), x)
    torch.testing.assert_close(flawed, torch.ones(2))
    fixed = gumbel_sum(stack, x, "concrete", 0.5, 0)
    (fixed_grad,) = torch.autograd.grad(fixed.sum(), x)
    assert flawed_grad.abs().max() < 1e-6 * fixed_grad.abs().max()


@pytest.mark.parametrize("relaxation", ["concrete", "straight-through", "probability"])
@pytest.mark.parametrize("units", UNITS)
def test_the_gumbel_score_varies_with_the_input_and_its_gradient_is_nonzero_and_input_specific(units, relaxation):
    stack = seeded_stack(units=units)
    x = images(2)
    model = xgen.wrap(stack)
    with torch.no_grad():
        scores = gumbel_sum(stack, x, relaxation, 0.5, 0)
    assert abs(float(scores[0] - scores[1])) > 1e-3
    grads = xgen.gradients.layer_gradients(model, "rbms.0", x, lambda i: gumbel_sum(stack, i, relaxation, 0.5, 0))
    g = grads.gradients
    assert (g.abs().amax(dim=1) > 1e-4).all()
    assert (g[0] - g[1]).abs().max() > 1e-3 * g.abs().max()


def test_noise_is_seeded_and_shared_by_the_batch():
    logits = torch.zeros(3, 7)
    first = logistic_noise(logits, torch.Generator().manual_seed(5))
    assert first.shape == (1, 7)
    assert torch.equal(first, logistic_noise(logits, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, logistic_noise(logits, torch.Generator().manual_seed(6)))


# -- rbm-gumbel --------------------------------------------------------------------------------------------------------


def reference_maps(stack: StackedRBM, x: torch.Tensor, tau: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain autograd, no hooks: the unit map g * a at hidden layer 1 of a 2-RBM binary stack, and its pixel map
    (|.| of the projection through |W_1|, channel mean, min-max)."""
    first, top = stack.rbms
    a1 = (first.hidden_bias + x.flatten(1) @ first.weight).detach().requires_grad_(True)
    logits = top.hidden_bias + torch.sigmoid(a1) @ top.weight
    u = torch.rand((1, logits.shape[1]), generator=torch.Generator().manual_seed(seed)).clamp(EPS, 1 - EPS)
    score = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau).sum()
    (g,) = torch.autograd.grad(score, a1)
    units = (g * a1).detach()
    pixels = (units @ first.weight.abs().t()).view(len(x), *stack.input_shape).mean(dim=1).abs().flatten(1)
    low, high = pixels.min(dim=1, keepdim=True).values, pixels.max(dim=1, keepdim=True).values
    return units, ((pixels - low) / (high - low)).view(len(x), *stack.input_shape[1:])


def test_rbm_gumbel_matches_an_independent_autograd_reference():
    stack, x = seeded_stack(), images(3)
    result = xgen.explain(stack, x, plugin="rbm-gumbel", tau=0.7, seed=4)
    units, pixels = reference_maps(stack, x, 0.7, 4)
    torch.testing.assert_close(result.anomaly_map, pixels, rtol=1e-4, atol=1e-5)
    raw = xgen.explain(stack, x, plugin="rbm-gumbel", tau=0.7, seed=4, sign="none", normalize="none", view="grid")
    torch.testing.assert_close(raw.details["grid"], units.view(3, 3, 4), rtol=1e-4, atol=1e-6)


def test_projection_spreads_a_unit_over_its_absolute_weights():
    stack = seeded_stack()
    one = torch.zeros(1, 9)
    one[0, 2] = 1.0
    expected = (stack.rbms[0].weight.abs() @ stack.rbms[1].weight.abs()[:, 2]).view(3, 4, 5).mean(dim=0)
    torch.testing.assert_close(project(one, stack, 2)[0, 0], expected)


def test_explain_shapes_for_the_pixel_and_grid_views(trained):
    x = xgen.dataset(DATA).test().images[:5]
    pixels = xgen.explain(trained, x, plugin="rbm-gumbel")
    assert pixels.anomaly_map.shape == (5, 8, 8) and pixels.score is None
    assert pixels.details["grid"].shape == (5, 6, 6) and pixels.details["layer"] == 1
    assert pixels.details["gumbel_sum"].shape == (5,)
    torch.testing.assert_close(pixels.details["pixels"], pixels.anomaly_map)
    grid = xgen.explain(trained, x, plugin="rbm-gumbel", view="grid", layer=2)
    assert grid.anomaly_map.shape == (5, 8, 8) and grid.details["grid"].shape == (5, 5, 5)
    top = xgen.explain(trained, x, plugin="rbm-gumbel", layer=-1)
    assert top.details["layer"] == 3 and top.details["grid"].shape == (5, 2, 2)
    for result in (pixels, grid, top):
        assert result.anomaly_map.min() >= 0 and result.anomaly_map.max() <= 1
    assert xgen.explain(seeded_stack(), images(2), plugin="rbm-gumbel").details["grid"].shape == (2, 3, 4)


@pytest.mark.parametrize(
    ("units", "options"),
    [
        ("binary", {}),
        ("spin", {}),
        ("binary", {"view": "grid", "layer": 2}),
        ("binary", {"relaxation": "straight-through"}),
        ("spin", {"relaxation": "probability", "layer": -1}),
    ],
    ids=["default", "spin", "grid-layer2", "straight-through", "spin-probability-top"],
)
def test_rbm_gumbel_passes_check_explainer(units, options):
    check_explainer("rbm-gumbel", seeded_stack(units=units), images(4), **options)


def test_the_seed_changes_the_noise_and_so_the_map():
    stack, x = seeded_stack(), images(2)
    first = xgen.explain(stack, x, plugin="rbm-gumbel", seed=0, normalize="none", sign="none")
    again = xgen.explain(stack, x, plugin="rbm-gumbel", seed=0, normalize="none", sign="none")
    other = xgen.explain(stack, x, plugin="rbm-gumbel", seed=1, normalize="none", sign="none")
    assert torch.equal(first.anomaly_map, again.anomaly_map)
    assert not torch.allclose(first.anomaly_map, other.anomaly_map)


def test_a_checkpoint_round_trip_gives_identical_maps(trained, tmp_path):
    path = xgen.save(trained, tmp_path / "rbm.pt")
    loaded = xgen.load(path)
    assert loaded.default_explainer == "rbm-gumbel" and loaded.config == trained.config
    x = xgen.dataset(DATA).test().images[:6]
    for options in ({"seed": 3}, {"seed": 3, "view": "grid", "layer": 2}):
        before = xgen.explain(trained, x, plugin="rbm-gumbel", **options)
        after = xgen.explain(loaded, x, plugin="rbm-gumbel", **options)
        assert torch.equal(before.anomaly_map, after.anomaly_map)
        assert torch.equal(before.details["grid"], after.details["grid"])
    assert torch.equal(xgen.score(trained, x), xgen.score(loaded, x))


def test_rbm_gumbel_refuses_other_models_before_any_work():
    with pytest.raises(xgen.WrapError, match=r"stacked RBMs only.*xgen train stacked-rbm"):
        xgen.explain(TinyVAE(), torch.rand(2, 1, 16, 16), plugin="rbm-gumbel")


def test_explaining_through_untrained_layers_warns():
    model = xgen.train("stacked-rbm", DATA, epochs=1, seed=0, device="cpu", options={"epochs_per_layer": 1})
    assert model.module.trained_steps.tolist()[1:] == [0, 0]
    with pytest.warns(UserWarning, match=r"layers \[2, 3\] were never trained"):
        xgen.explain(model, xgen.dataset(DATA).test().images[:2], plugin="rbm-gumbel")


# -- options -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "options", "message"),
    [
        ("explainer", "rbm-gumbel", {"tau": 0}, "tau must be a temperature > 0"),
        ("explainer", "rbm-gumbel", {"layer": 0}, "counts hidden layers from 1"),
        ("explainer", "rbm-gumbel", {"relaxation": "categorical"}, "expected one of"),
        ("explainer", "rbm-gumbel", {"view": "both"}, "expected one of"),
        ("explainer", "rbm-recon-error", {"steps": 0}, "steps >= 1"),
        ("scorer", "rbm-recon-error", {"depth": 0}, "depth >= 1"),
        ("architecture", "stacked-rbm", {"k": 0}, "k >= 1"),
        ("architecture", "stacked-rbm", {"hidden": "0,4"}, "positive sizes"),
        ("architecture", "stacked-rbm", {"epochs_per_layer": 0}, "epochs_per_layer >= 1"),
        ("architecture", "stacked-rbm", {"momentum": 1}, "momentum < 1"),
        ("architecture", "stacked-rbm", {"units": "ternary"}, "expected one of"),
    ],
)
def test_bad_options_are_refused_with_one_sentence(kind, name, options, message):
    with pytest.raises(xgen.XgenError, match=message):
        xgen.plugins.lookup(kind, name)(**options)


def test_out_of_range_layer_and_depth_are_refused_at_explain_time():
    stack, x = seeded_stack(), images(1)
    with pytest.raises(xgen.XgenError, match=r"layer=3 is out of range.*hidden layers 1-2"):
        xgen.explain(stack, x, plugin="rbm-gumbel", layer=3)
    with pytest.raises(xgen.XgenError, match="depth=5 is out of range"):
        xgen.score(stack, x, plugin="rbm-recon-error", depth=5)


# -- scorers and reconstruction ----------------------------------------------------------------------------------------


def test_rbm_recon_error_with_defaults_equals_generic_recon_error(trained):
    x = xgen.dataset(DATA).test().images[:6]
    ours = xgen.explain(trained, x, plugin="rbm-recon-error")
    generic = xgen.explain(trained, x, plugin="recon-error")
    torch.testing.assert_close(ours.anomaly_map, generic.anomaly_map, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(xgen.score(trained, x, plugin="rbm-recon-error"), ours.score)


@pytest.mark.parametrize("options", [{}, {"gibbs": "sampled", "steps": 3, "seed": 2}, {"depth": 1}])
def test_rbm_recon_error_passes_check_explainer(options):
    check_explainer("rbm-recon-error", seeded_stack(), images(4), **options)


def test_sampled_reconstruction_is_seeded():
    stack, x = seeded_stack(), images(3)
    first = xgen.score(stack, x, plugin="rbm-recon-error", gibbs="sampled", steps=2, seed=0)
    assert torch.equal(first, xgen.score(stack, x, plugin="rbm-recon-error", gibbs="sampled", steps=2, seed=0))
    assert not torch.equal(first, xgen.score(stack, x, plugin="rbm-recon-error", gibbs="sampled", steps=2, seed=1))


def test_free_energy_is_higher_for_anomalies_and_is_the_default_scorer(trained):
    test = xgen.dataset(DATA).test()
    scores = xgen.score(trained, test.images)
    torch.testing.assert_close(scores, xgen.score(trained, test.images, plugin="rbm-free-energy"))
    assert scores[test.labels == 1].mean() > scores[test.labels == 0].mean()
    stack = trained.module
    torch.testing.assert_close(scores, stack.rbms[0].free_energy(test.images.flatten(1)).detach())


# -- the architecture and its greedy schedule --------------------------------------------------------------------------


def test_default_sizes_are_perfect_squares_scaled_to_the_input():
    assert default_hidden(784) == (484, 256, 64)
    assert default_hidden(64 * 64) == (2500, 1369, 324)
    assert grid_shape(484) == (22, 22) and grid_shape(12) == (3, 4) and grid_shape(7) == (1, 7)
    architecture = xgen.plugins.lookup("architecture", "stacked-rbm")(epochs_per_layer=7)
    assert architecture.epochs == 21
    assert xgen.plugins.lookup("architecture", "stacked-rbm")(hidden="9,4").epochs == 40


def test_the_default_step_size_scales_with_the_fan_in():
    architecture = xgen.plugins.lookup("architecture", "stacked-rbm")
    assert architecture().learning_rate(784) == 0.05 and architecture().learning_rate(256) == 0.05
    assert architecture().learning_rate(4096) == pytest.approx(0.05 * 784 / 4096)
    assert architecture(lr=0.2).learning_rate(4096) == 0.2
    with pytest.raises(xgen.XgenError, match="lr > 0"):
        architecture(lr=0)


def test_the_schedule_trains_each_layer_in_turn_and_extra_epochs_train_the_top():
    assert [layer_for_epoch(e, 2, 3) for e in range(1, 9)] == [0, 0, 1, 1, 2, 2, 2, 2]
    model = xgen.train(
        "stacked-rbm", DATA, epochs=5, seed=0, device="cpu", options={"hidden": "16,9", "epochs_per_layer": 2}
    )
    assert [row["phase"] for row in model.metadata["training"]["history"]] == ["layer 1/2"] * 2 + ["layer 2/2"] * 3
    assert model.module.trained_steps.tolist() == [2 * 8, 3 * 8]  # 127 images, batch 16: 8 steps an epoch


@pytest.mark.parametrize(("units", "persistent"), [("binary", False), ("spin", False), ("binary", True)])
def test_training_lowers_the_reconstruction_error_of_each_layer(units, persistent, trained):
    if units == "binary" and not persistent:
        model = trained
    else:
        options = {"epochs_per_layer": 4, "units": units, "persistent": persistent}
        model = xgen.train("stacked-rbm", DATA, seed=0, device="cpu", options=options)
    history = model.metadata["training"]["history"]
    for layer in (1, 2, 3):
        rows = [row for row in history if row["phase"] == f"layer {layer}/3"]
        assert len(rows) == 4
        assert rows[-1]["recon"] < rows[0]["recon"], (layer, rows)
        assert all(torch.isfinite(torch.tensor(row["pseudo-ll"])) for row in rows)
    assert model.module.rbms[0].units == units


@pytest.mark.parametrize(
    ("kind", "name"),
    [("architecture", "stacked-rbm"), ("explainer", "rbm-gumbel"), ("explainer", "rbm-recon-error")],
)
def test_every_option_is_documented(kind, name):
    page = (Path(__file__).parent.parent / "docs" / "methods" / "rbm.md").read_text()
    for option in xgen.plugins.lookup(kind, name).options():
        assert re.search(rf"`{option}`", page), f"option {option} of {name} missing from docs/methods/rbm.md"
