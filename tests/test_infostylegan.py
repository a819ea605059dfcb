"""`infostylegan`: the codes and eq. 2/5 against scipy, who the information term trains, which step updates what,
batch-independent discriminator embeddings, and training, saving and loading through xgen."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

import xgen
from xgen.plugins import lookup
from xgen_plugins.infostylegan.architecture import discriminator_parameters, generator_parameters
from xgen_plugins.infostylegan.codes import Codes
from xgen_plugins.infostylegan.losses import information_loss

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"width": 4, "w_dim": 16, "mapping_layers": 2, "q_hidden": 16, "noise": 6, "codes": "bern:2,cat:3,unif:2"}


def _setup(styles: bool = True, size: int = 16, seed: int = 0, **options):
    torch.manual_seed(seed)
    arch = lookup("architecture", "infostylegan")(**{**TINY, "styles": styles, **options})
    module = arch.build((1, size, size))
    x = torch.rand(8, 1, size, size, generator=torch.Generator().manual_seed(seed + 1))
    return arch, module, x


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in module.named_parameters() if not torch.equal(p, before[name])}


def _names(module: torch.nn.Module, params: list[torch.nn.Parameter]) -> set[str]:
    ids = {id(p) for p in params}
    return {name for name, p in module.named_parameters() if id(p) in ids}


@pytest.mark.parametrize(
    "spec",
    ["bern7", "gauss:3", "cat:1", "unif:0", "bern:-2", "cat:three", "bern:2,,unif:1", "unif:2;cat:3"],
)
def test_bad_codes_specs_get_one_sentence_before_any_work(spec):
    with pytest.raises(xgen.XgenError, match="codes"):
        Codes(spec)
    with pytest.raises(xgen.XgenError, match="codes"):
        lookup("architecture", "infostylegan")(codes=spec)


def test_codes_layout_and_samples_follow_the_spec():
    codes = Codes("bern:7,cat:3,unif:10")
    assert (codes.width, codes.q_dim) == (7 + 3 + 10, 7 + 3 + 20)
    assert [v.name for v in codes.variables][:9] == [*(f"bern{i}" for i in range(7)), "cat0", "unif0"]
    assert Codes("bern:7,cat:3,unif:10", learned_variance=False).q_dim == 20
    assert Codes("none").width == 0 and Codes("").q_dim == 0
    c = codes.sample(2000, torch.Generator().manual_seed(0))
    assert torch.equal(c, codes.sample(2000, torch.Generator().manual_seed(0)))
    bern, cat, unif = c[:, :7], c[:, 7:10], c[:, 10:]
    assert set(bern.unique().tolist()) == {0.0, 1.0} and abs(bern.mean().item() - 0.5) < 0.05
    assert torch.equal(cat.sum(dim=1), torch.ones(2000)) and set(cat.unique().tolist()) == {0.0, 1.0}
    assert cat.mean(dim=0).sub(1 / 3).abs().max() < 0.05
    assert unif.min() >= -1 and unif.max() <= 1 and abs(unif.mean().item()) < 0.05
    # H(C) = 7 log 2 + log 3 + 10 log 2 (the differential entropy of U(-1, 1) is log 2)
    assert codes.entropy() == pytest.approx(17 * np.log(2) + np.log(3))


@pytest.mark.parametrize("learned", [True, False])
def test_information_equals_log_q_minus_log_prior_computed_by_hand(learned):
    codes = Codes("bern:2,cat:3,unif:2", learned_variance=learned)
    generator = torch.Generator().manual_seed(3)
    c = codes.sample(5, generator).double()
    q = torch.randn(5, codes.q_dim, generator=generator).double()
    total, terms = codes.information(q, c)
    qn, cn = q.numpy(), c.numpy()
    bern = stats.bernoulli.logpmf(cn[:, :2], special.expit(qn[:, :2])).sum(axis=1) + 2 * np.log(2)
    cat = (special.log_softmax(qn[:, 2:5], axis=1) * cn[:, 2:5]).sum(axis=1) + np.log(3)
    mean = qn[:, 5:7]
    std = np.exp(0.5 * qn[:, 7:9]) if learned else np.ones_like(mean)
    unif = stats.norm.logpdf(cn[:, 5:7], mean, std).sum(axis=1) + 2 * np.log(2)
    np.testing.assert_allclose(terms["bern"].numpy(), bern, rtol=1e-10)
    np.testing.assert_allclose(terms["cat"].numpy(), cat, rtol=1e-10)
    np.testing.assert_allclose(terms["unif"].numpy(), unif, rtol=1e-10)
    np.testing.assert_allclose(total.numpy(), bern + cat + unif, rtol=1e-10)
    weighted, _ = codes.information(q, c, {"bern": 0.5, "cat": 2.0, "unif": 0.0})
    np.testing.assert_allclose(weighted.numpy(), 0.5 * bern + 2 * cat, rtol=1e-10)
    loss, logged = information_loss(codes, q, c)
    assert loss.item() == pytest.approx(-(bern + cat + unif).mean())
    assert logged["info"] == pytest.approx((bern + cat + unif).mean())


@pytest.mark.parametrize("styles", [True, False])
def test_information_gradient_reaches_the_shared_trunk_q_and_the_generator(styles):
    arch, module, _ = _setup(styles)
    z = arch.sample_latent(8)
    q = module.auxiliary(module.decode(z))
    loss, _ = information_loss(arch.code_set, q, z[:, arch.noise :])
    loss.backward()

    def reached(prefix: str) -> bool:
        grads = [p.grad for n, p in module.named_parameters() if n.startswith(prefix)]
        return any(g is not None and g.abs().sum() > 0 for g in grads)

    for part in ["discriminator.trunk", "discriminator.conv", "discriminator.dense", "discriminator.q", "generator"]:
        assert reached(part), part
    assert module.discriminator.out.weight.grad is None


@pytest.mark.parametrize("styles", [True, False])
def test_d_step_updates_only_d_and_the_g_step_only_g_and_q(styles):
    arch, module, x = _setup(styles)
    d_optimizer, g_optimizer = arch.configure_optimizers(module)
    d_own = _names(module, discriminator_parameters(module))
    g_own = _names(module, generator_parameters(module))
    assert d_own.isdisjoint(g_own) and d_own | g_own == {n for n, _ in module.named_parameters()}
    assert any(n.startswith("discriminator.q.") for n in g_own)
    z = arch.sample_latent(len(x))
    fake = module.decode(z)
    before = _snapshot(module)
    arch.discriminator_step(module, x, fake, z[:, arch.noise :], d_optimizer)
    changed = _changed(module, before)
    assert changed <= d_own and {"discriminator.out.weight", "discriminator.conv.0.weight"} <= changed
    before = _snapshot(module)
    arch.generator_step(module, fake, z[:, arch.noise :], g_optimizer)
    changed = _changed(module, before)
    assert changed <= g_own
    assert any(n.startswith("generator.") for n in changed) and any(n.startswith("discriminator.q.") for n in changed)
    assert all(p.requires_grad for p in module.parameters())


def test_the_information_term_trains_the_trunk_in_the_d_step_and_q_only_when_beta_is_positive():
    after = {}
    for beta in (0.0, 1.0):
        arch, module, x = _setup(True, beta=beta)
        before = _snapshot(module)
        torch.manual_seed(5)
        arch.training_step(module, x, arch.configure_optimizers(module))
        after[beta] = (_snapshot(module), _changed(module, before))
    params0, changed0 = after[0.0]
    params1, changed1 = after[1.0]
    assert not any(n.startswith("discriminator.q.") for n in changed0)
    assert any(n.startswith("discriminator.q.") for n in changed1)
    # same batch, same latents: the real/fake output moves alike, the trunk differently (the info term's share)
    assert torch.equal(params0["discriminator.out.weight"], params1["discriminator.out.weight"])
    assert not torch.equal(params0["discriminator.trunk.0.weight"], params1["discriminator.trunk.0.weight"])


@pytest.mark.parametrize("train_mode", [True, False])
def test_embeddings_of_an_image_do_not_depend_on_the_other_images_in_its_batch(train_mode):
    _, module, x = _setup(True, size=32)
    module.train(train_mode)
    with torch.no_grad():
        for tap in ("conv", "dense", "q"):
            batch = module.embed(x, tap)
            alone = torch.cat([module.embed(x[i : i + 1], tap) for i in range(len(x))])
            shuffled = module.embed(x.flip(0), tap).flip(0)
            assert batch.shape[0] == len(x) and batch.dim() == 2
            torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(batch, shuffled, rtol=1e-5, atol=1e-6)
    assert module.embed(x[:2], "conv").shape == (2, module.discriminator.conv[0].out_channels * 16)


def test_style_generator_decodes_with_fresh_noise_in_training_and_fixed_noise_in_eval():
    arch, module, _ = _setup(True)
    with torch.no_grad():
        for layer in module.generator.styles:
            layer.noise_scale.fill_(1.0)
        z = arch.sample_latent(3)
        module.train()
        assert not torch.equal(module.decode(z), module.decode(z))
        module.eval()
        assert torch.equal(module.decode(z), module.decode(z))
    _, random_eval, _ = _setup(True, eval_noise="random")
    random_eval.eval()
    with torch.no_grad():
        for layer in random_eval.generator.styles:
            layer.noise_scale.fill_(1.0)
        assert not torch.equal(random_eval.decode(z), random_eval.decode(z))


@pytest.mark.parametrize("shape", [(1, 16, 32), (1, 24, 24), (3, 4, 4)])
def test_images_that_are_not_square_powers_of_two_are_refused(shape):
    with pytest.raises(xgen.XgenError, match="power of two"):
        lookup("architecture", "infostylegan")().build(shape)


@pytest.mark.parametrize("styles", [True, False])
def test_train_save_load_generate_on_dsprites(tmp_path, styles):
    path = tmp_path / "gan.pt"
    options = {**TINY, "styles": styles, "codes": "cat:3,unif:2"}
    model = xgen.train(
        "infostylegan", "dsprites:train_n=64,test_n=16", epochs=1, seed=0, device="cpu", options=options, out=path
    )
    record = model.metadata["training"]["history"][0]
    assert {"d", "g", "info", "info_cat", "info_unif"} <= set(record)
    loaded = xgen.load(path)
    assert loaded.config["styles"] is styles and loaded.config["codes"] == "cat:3,unif:2"
    assert {"decode", "generate", "discriminator", "auxiliary"} <= loaded.capabilities
    images = loaded.generate(5, torch.Generator().manual_seed(1))
    assert images.shape == (5, 1, 64, 64) and images.min() >= 0 and images.max() <= 1
    with torch.no_grad():
        torch.testing.assert_close(images, model.generate(5, torch.Generator().manual_seed(1)))
        x = images[:3]
        assert loaded.head("discriminator")(x).shape == (3,)
        assert loaded.head("auxiliary")(x).shape == (3, 3 + 2 * 2)
    z = loaded.sample_prior(4, torch.Generator().manual_seed(2))
    assert z.shape == (4, TINY["noise"] + 5)
    assert torch.equal(z[:, TINY["noise"] : TINY["noise"] + 3].sum(dim=1), torch.ones(4))
    assert isinstance(loaded.layer("discriminator.conv"), torch.nn.Module)


@pytest.mark.parametrize("size", [16, 64])
def test_a_fresh_discriminator_separates_images_so_q_has_something_to_read(size):
    # PyTorch's default initialisation left the dense features of different images within about 1e-3 of each other
    _, module, x = _setup(True, size=size)
    with torch.no_grad():
        dense = module.embed(x, "dense")
        images = module.decode(torch.randn(8, module.noise + module.code_width))
    assert dense.std(dim=0).mean() > 0.05 * dense.abs().mean()
    assert images.std(dim=0).mean() > 0.01
