"""`pwae`: tiles and permutations, the sliced-Wasserstein and HSIC terms, the jigsaw head, training and its error
statistics, the explainer's and scorer's eq. 21-23, any input size, checkpoints, and a test path that never
shuffles."""

from __future__ import annotations

import math

import pytest
import torch

import xgen
from xgen.plugins import lookup
from xgen.testing import TinyVAE, check_explainer
from xgen_plugins.pwae import errors, hsic, priors, tiles
from xgen_plugins.pwae.networks import PWAENet

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = {"width": 4, "code": 4, "permutations": 10, "projections": 8}
DATA = "digits:normal=1,size=24"


def architecture(**options) -> xgen.Architecture:
    return lookup("architecture", "pwae")(**{**TINY, **options})


def network(shape=(1, 24, 24), seed: int = 0, **options) -> PWAENet:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return architecture(**options).build(shape)


def images(n: int = 4, shape=(1, 24, 24), seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def trained() -> xgen.Model:
    return xgen.train("pwae", DATA, epochs=1, seed=0, device="cpu", options=TINY)


# -- tiles and permutations -------------------------------------------------------------------------------------------


def test_cut_paste_and_a_permutation_round_trip():
    x = images(3, (2, 12, 12))
    pieces = tiles.cut(x, 3)
    assert pieces.shape == (3, 9, 2, 4, 4)
    torch.testing.assert_close(pieces[:, 5], x[:, :, 4:8, 8:12])
    torch.testing.assert_close(tiles.paste(pieces, 3), x)
    perms = tiles.permutation_set(9, 3, seed=1)
    shuffled = tiles.shuffle(pieces, perms)
    assert torch.equal(shuffled[1, 0], pieces[1, perms[1, 0]])
    assert not torch.equal(shuffled[1:], pieces[1:])
    torch.testing.assert_close(tiles.unshuffle(shuffled, perms), pieces)


def test_permutation_set_is_seeded_distinct_with_identity_and_far_apart():
    perms = tiles.permutation_set(9, 30, seed=0)
    assert perms.shape == (30, 9) and torch.equal(perms[0], torch.arange(9))
    assert len(torch.unique(perms, dim=0)) == 30
    assert all(sorted(p.tolist()) == list(range(9)) for p in perms)
    assert torch.equal(perms, tiles.permutation_set(9, 30, seed=0))
    random = torch.rand(30, 9, generator=torch.Generator().manual_seed(3)).argsort(dim=1)
    assert tiles.min_hamming(perms) >= tiles.min_hamming(random)
    assert tiles.min_hamming(perms) >= 6
    assert len(torch.unique(tiles.permutation_set(4, 24), dim=0)) == 24


def test_working_space_pads_to_a_multiple_of_n_and_maps_back():
    x = images(2, (1, 28, 28))
    fitted = tiles.to_working(x, (28, 28), 3)
    assert fitted.shape == (2, 1, 30, 30)
    torch.testing.assert_close(fitted[..., :28, :28], x)
    torch.testing.assert_close(tiles.from_working(fitted, (28, 28), (28, 28)), x)
    assert tiles.to_working(images(2, (1, 40, 50)), (28, 28), 3).shape == (2, 1, 30, 30)
    assert tiles.from_working(fitted, (28, 28), (40, 50)).shape == (2, 1, 40, 50)


# -- the priors, SWD and HSIC ----------------------------------------------------------------------------------------


def test_sliced_wasserstein_is_zero_on_itself_and_grows_with_a_shift():
    torch.manual_seed(0)
    a = torch.randn(64, 3, 5)
    torch.testing.assert_close(priors.sliced_wasserstein(a, a, 20), torch.zeros(3))
    distances = [float(priors.sliced_wasserstein(a, a + shift, 50).sum()) for shift in (0.5, 1.0, 2.0)]
    assert 0 < distances[0] < distances[1] < distances[2]


def test_student_t_prior_has_its_tile_locations():
    torch.manual_seed(0)
    samples = priors.student_t_samples((4000, 3, 2), nu=5.0, scale=1.0, device=torch.device("cpu"))
    torch.testing.assert_close(
        samples.median(dim=0).values, torch.tensor([[1.0] * 2, [2.0] * 2, [3.0] * 2]), atol=0.1, rtol=0
    )
    assert priors.gaussian_kl(torch.tensor([[[1.0], [2.0]]]), torch.zeros(1, 2, 1)).abs().max() < 1e-6


def test_nhsic_is_near_zero_for_independent_and_large_for_identical_samples():
    torch.manual_seed(0)
    x, y = torch.randn(128, 1), torch.randn(128, 1)
    same = float(hsic.nhsic(x, x))
    assert float(hsic.nhsic(x, y)) < 0.1 * same
    assert same > 2.0
    assert float(hsic.nhsic(x, 3 * x + 1)) > 0.9 * same


# -- training ---------------------------------------------------------------------------------------------------------


def test_jigsaw_head_learns_a_four_permutation_toy_problem():
    torch.manual_seed(0)
    net = network((1, 8, 8), n=2, permutations=4)
    base = torch.tensor([0.1, 0.4, 0.7, 1.0]).view(1, 4, 1, 1, 1).expand(1, 4, 1, 4, 4)
    optimizer = torch.optim.Adam([*net.encoder.parameters(), *net.jigsaw_head.parameters()], lr=0.01)
    for _ in range(150):
        labels = torch.randint(4, (16,))
        pieces = tiles.shuffle(
            base.expand(16, -1, -1, -1, -1) + 0.05 * torch.randn(16, 4, 1, 4, 4), net.permutations[labels]
        )
        loss = torch.nn.functional.cross_entropy(net.jigsaw(net.encode_slots(pieces)[0]), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    labels = torch.arange(4).repeat(8)
    pieces = tiles.shuffle(
        base.expand(32, -1, -1, -1, -1) + 0.05 * torch.randn(32, 4, 1, 4, 4), net.permutations[labels]
    )
    with torch.no_grad():
        predicted = net.jigsaw(net.encode_slots(pieces)[0]).argmax(dim=1)
    assert (predicted == labels).float().mean() >= 0.95


@pytest.mark.parametrize(
    ("options", "terms"),
    [
        ({}, {"ae", "swd", "hsic", "jigsaw"}),
        ({"hsic": False}, {"ae", "swd", "jigsaw"}),
        ({"jigsaw": False}, {"ae", "swd", "hsic"}),
        ({"prior": "gaussian-kl"}, {"ae", "kl", "hsic", "jigsaw"}),
    ],
)
def test_training_step_logs_the_terms_the_options_switch_on(options, terms):
    arch = architecture(**options)
    torch.manual_seed(0)
    net = arch.build((1, 24, 24))
    optimizers = arch.configure_optimizers(net)
    before = [p.detach().clone() for p in net.parameters()]
    logged = arch.training_step(net, images(6), optimizers)
    assert set(logged) == {"loss", *terms} and all(math.isfinite(v) for v in logged.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_jigsaw_false_never_shuffles(monkeypatch):
    arch = architecture(jigsaw=False)
    net = arch.build((1, 24, 24))
    monkeypatch.setattr(tiles, "shuffle", _refuse)
    arch.training_step(net, images(4), arch.configure_optimizers(net))


def test_learning_rate_follows_the_schedule_and_training_calibrates(trained):
    arch = architecture()
    arch.training_set(xgen.dataset(DATA))
    arch.phases(2)
    net = arch.build((1, 24, 24))
    (optimizer,) = arch.configure_optimizers(net)
    rates = []
    for _ in range(3):
        arch.training_step(net, images(64), [optimizer])
        rates.append(optimizer.param_groups[0]["lr"])
    steps = 2 * math.ceil(127 / 64)
    expected = [0.01 / (1 + 10 * s / steps) ** 0.75 for s in range(3)]
    assert rates == pytest.approx(expected)
    module = trained.module
    assert int(module.calibrated) == 1 and module.error_mean.shape == (10,)
    assert (module.error_std > 0).all()
    history = trained.metadata["training"]["history"][0]
    assert {"ae", "swd", "hsic", "jigsaw"} <= set(history)


# -- the explainer and scorer ----------------------------------------------------------------------------------------


def _refuse(*args, **kwargs):
    raise AssertionError("tiles were shuffled at test time")


def test_the_test_path_never_shuffles(trained, monkeypatch):
    monkeypatch.setattr(tiles, "shuffle", _refuse)
    x = xgen.dataset(DATA).test().images[:6]
    explanation = check_explainer("pwae-patch-error", trained, x)
    assert explanation.details["tiles"].shape == (6, 3, 3)
    single = xgen.explain(trained, x[2:3], plugin="pwae-patch-error").details["tiles"][0]
    torch.testing.assert_close(single, explanation.details["tiles"][2], atol=1e-6, rtol=1e-4)
    assert not torch.equal(explanation.details["tiles"][0], explanation.details["tiles"][2])
    xgen.score(trained, x, plugin="pwae-patch-error")
    result = xgen.evaluate(trained, DATA, metrics=["image-auroc"])
    assert 0 <= result["image-auroc"] <= 1


@pytest.mark.parametrize("size", [(24, 24), (28, 28), (64, 64), (20, 33)])
def test_any_input_size_gives_maps_at_that_size(trained, size):
    x = images(2, (1, *size))
    explanation = xgen.explain(trained, x, plugin="pwae-patch-error")
    assert explanation.anomaly_map.shape == (2, *size) and explanation.score.shape == (2,)
    assert xgen.score(trained, x).shape == (2,)
    with pytest.raises(xgen.InputError, match="images have 3 channels but the model expects 1"):
        xgen.explain(trained, images(2, (3, *size)))


def test_cli_explains_files_of_several_sizes_without_resize(trained, tmp_path):
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from xgen.cli import app

    xgen.save(trained, tmp_path / "pwae.pt")
    sizes = {"a": (24, 24), "b": (30, 41), "c": (24, 24)}
    rng = np.random.default_rng(0)
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    runner = CliRunner()
    out = tmp_path / "maps"
    files = [str(tmp_path / f"{name}.png") for name in sizes]
    result = runner.invoke(app, ["explain", "--model", str(tmp_path / "pwae.pt"), *files, "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name, size in sizes.items():
        assert np.load(out / f"{name}.npy").shape == size
    assert len((out / "scores.csv").read_text().splitlines()) == 4
    refused = runner.invoke(app, ["explain", "--model", str(tmp_path / "pwae.pt"), str(tmp_path / "rgb.png")])
    assert isinstance(refused.exception, xgen.InputError)
    assert "3 channel(s) but the model expects 1" in str(refused.exception)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 10, 17)])
def test_networks_build_for_any_size_and_reconstruct_at_it(shape):
    net = network(shape).eval()
    x = images(2, shape)
    assert net(x).shape == x.shape
    errors.calibrate(net, x)
    found = errors.patch_errors(net, x)
    assert found.pixel_map.shape == (2, *shape[1:]) and found.tiles.shape == (2, 3, 3)
    torch.testing.assert_close(found.pixel_map, (net(x) - x).square().mean(dim=1))


def test_eq_21_to_23_on_a_constructed_case():
    mean, std = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]), torch.tensor([0.5, 1.0, 1.0, 1.0, 2.0])
    found = errors.PatchErrors(
        pixel_map=torch.zeros(3, 4, 4),
        image=torch.tensor([1.0, 3.0, 1.5]),
        tiles=torch.tensor([[0.5, 0.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 10.0]]).view(3, 2, 2),
    )
    z = errors.normalized(found, mean, std)
    torch.testing.assert_close(z[:, 0], torch.tensor([0.0, 4.0, 1.0]))
    torch.testing.assert_close(z[2, 1:], torch.tensor([0.0, 0.0, 0.0, 5.0]))
    torch.testing.assert_close(errors.score(z, "image"), torch.tensor([0.0, 4.0, 1.0]))
    torch.testing.assert_close(errors.score(z, "image+tiles"), torch.tensor([1.0, 4.0, 5.0]))
    assert errors.decide(z, "image", 3.0).tolist() == [False, True, False]
    assert errors.decide(z, "image+tiles", 3.0).tolist() == [False, True, True]


def test_explainer_rule_and_flags(trained):
    x = images(3)
    both = xgen.explain(trained, x, plugin="pwae-patch-error")
    image = xgen.explain(trained, x, plugin="pwae-patch-error", rule="image")
    z = both.details["normalized"]
    torch.testing.assert_close(both.score, z.amax(dim=1))
    torch.testing.assert_close(image.score, z[:, 0])
    assert both.details["flagged"].tolist() == (z.amax(dim=1) > 3.0).tolist()
    scorer = xgen.score(trained, x, plugin="pwae-patch-error", rule="image")
    torch.testing.assert_close(scorer, image.score)


def test_explainer_refuses_other_and_uncalibrated_models():
    with pytest.raises(xgen.XgenError, match="needs a pwae model"):
        xgen.explain(TinyVAE(), images(2, (1, 16, 16)), plugin="pwae-patch-error")
    arch = architecture()
    model = arch.wrap(network().eval(), (1, 24, 24))
    with pytest.raises(xgen.XgenError, match="training-error statistics"):
        xgen.explain(model, images(2), plugin="pwae-patch-error")


# -- options and checkpoints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 2, "permutations": 25}, "between 1 and 24"),
        ({"permutations": 1}, "permutations >= 2"),
        ({"w_hsic": -1}, "w_hsic=-1"),
        ({"backbone_weights": "w.pt"}, "backbone=resnet18"),
        ({"prior": "laplace"}, "expected one of"),
        ({"nu": 0}, "nu > 0"),
    ],
)
def test_options_are_validated(options, message):
    with pytest.raises(xgen.XgenError, match=message):
        architecture(**options)


def test_checkpoint_round_trip_gives_identical_maps_and_permutations(trained, tmp_path):
    path = xgen.save(trained, tmp_path / "pwae.pt")
    loaded = xgen.load(path)
    assert loaded.architecture == "pwae" and loaded.config == trained.config
    for name in ("permutations", "error_mean", "error_std", "calibrated"):
        assert torch.equal(getattr(loaded.module, name), getattr(trained.module, name))
    x = images(3)
    before, after = xgen.explain(trained, x), xgen.explain(loaded, x)
    torch.testing.assert_close(after.anomaly_map, before.anomaly_map)
    torch.testing.assert_close(after.score, before.score)


def test_resnet_backbone_warns_without_weights_and_reads_a_local_file(tmp_path):
    arch = architecture(backbone="resnet18")
    net = arch.build((1, 24, 24))
    with pytest.warns(UserWarning, match="random weights"):
        arch.configure_optimizers(net)
    from torchvision.models import resnet18

    weights = tmp_path / "r18.pt"
    torch.save(resnet18(weights=None).state_dict(), weights)
    arch = architecture(backbone="resnet18", backbone_weights=str(weights))
    arch.configure_optimizers(arch.build((1, 24, 24)))
    with pytest.raises(xgen.XgenError, match="does not exist"):
        architecture(backbone="resnet18", backbone_weights=str(tmp_path / "none.pt")).configure_optimizers(net)
