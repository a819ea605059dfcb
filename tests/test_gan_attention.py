"""`disc-gradcam` and `q-gradcam` on hand-built heads whose answers are known, against one backward pass per code on
an infostylegan, and `xgen traverse` with one row per declared code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import xgen
from xgen.cli.app import app
from xgen.plugins import lookup
from xgen.testing import TinyVAE, check_explainer

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16
BRIGHT = (slice(2, 6), slice(2, 6))
DARK = (slice(10, 14), slice(10, 14))
TINY = {"width": 4, "w_dim": 16, "mapping_layers": 1, "q_hidden": 8, "noise": 4, "codes": "cat:3,unif:2,bern:1"}


class PatchGAN(nn.Module):
    """Hand-weighted heads on two feature channels at full resolution, zero on a grey (0.5) image: `bright` =
    relu(2x - 1) and `dark` = relu(1 - 2x). D's logit = 2 - 40 mean(bright) + 40 mean(dark): bright patches are fake
    evidence, dark ones real evidence, wherever they are (Grad-CAM weighs channels, not positions). Q's outputs:
    0 `bright` = 10 mean(bright); 1 `ignored` = a constant (zero weights, as for a code the generator ignores);
    2-4 the logits of a categorical code `cat` = (10 mean(bright), 10 mean(dark), 0.1)."""

    auxiliary_outputs = [("bright", 0), ("ignored", 1), ("cat", slice(2, 5))]

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU())
        self.dense = nn.Linear(2 * SIZE * SIZE, 1)
        self.q = nn.Linear(2 * SIZE * SIZE, 5)
        pixels = SIZE * SIZE
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor([2.0, -2.0]).view(2, 1, 1, 1))
            self.features[0].bias.copy_(torch.tensor([-1.0, 1.0]))
            bright, dark = torch.zeros(2, pixels * 2), torch.zeros(2, pixels * 2)
            bright[:, :pixels], dark[:, pixels:] = 1 / pixels, 1 / pixels
            self.dense.weight.copy_(-40 * bright[:1] + 40 * dark[:1])
            self.dense.bias.fill_(2.0)
            self.q.weight.zero_()
            self.q.weight[0] = 10 * bright[0]
            self.q.weight[2] = 10 * bright[0]
            self.q.weight[3] = 10 * dark[0]
            self.q.bias.copy_(torch.tensor([0.0, 0.7, 0.0, 0.0, 0.1]))

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x).flatten(1))[:, 0]

    def auxiliary(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(self.features(x).flatten(1))


def patched(bright: bool, dark: bool) -> torch.Tensor:
    x = torch.full((1, 1, SIZE, SIZE), 0.5)
    if bright:
        x[0, 0, BRIGHT[0], BRIGHT[1]] = 1.0
    if dark:
        x[0, 0, DARK[0], DARK[1]] = 0.0
    return x


@pytest.fixture(scope="module")
def patch_gan() -> xgen.Model:
    return xgen.wrap(PatchGAN(), layer="features")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Both patches; the bright one only; the dark one only; neither."""
    return torch.cat([patched(True, True), patched(True, False), patched(False, True), patched(False, False)])


def region_mask(*regions: tuple[slice, slice]) -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    for rows, cols in regions:
        mask[rows, cols] = True
    return mask


def test_disc_gradcam_lights_the_patch_that_reads_as_fake_and_scores_one_minus_d(patch_gan, images):
    result = xgen.explain(patch_gan, images, plugin="disc-gradcam")
    assert result.details["layer"] == "features"
    undeclared = xgen.explain(xgen.wrap(patch_gan.module), images, plugin="disc-gradcam")
    assert undeclared.details["layer"] == "features.0", "without layer=, the last Conv2d the discriminator runs"
    torch.testing.assert_close(undeclared.anomaly_map, result.anomaly_map)
    bright, dark = region_mask(BRIGHT), region_mask(DARK)
    for i in (0, 1):
        assert torch.all(result.anomaly_map[i][bright] == 1) and torch.all(result.anomaly_map[i][~bright] == 0)
    assert torch.all(result.anomaly_map[2:] == 0), "no fake evidence anywhere: the maps are flat"
    with torch.no_grad():
        logit = patch_gan.module.discriminate(images)
    torch.testing.assert_close(result.score, torch.sigmoid(-logit))
    assert result.score[1] > result.score[3] > result.score[2]
    signed = xgen.explain(patch_gan, images[:1], plugin="disc-gradcam", sign="abs").anomaly_map[0]
    assert torch.all(signed[dark] > 0.99), "abs also shows the region that looks real"
    same = xgen.explain(patch_gan, images, plugin="disc-gradcam", evidence="logit")
    torch.testing.assert_close(same.anomaly_map, result.anomaly_map)


def test_q_gradcam_of_a_code_the_image_does_not_drive_is_flat_and_cat_follows_the_predicted_class(patch_gan, images):
    result = xgen.explain(patch_gan, images, plugin="q-gradcam", per_dim=True)
    per_dim = result.details["per_dim"]
    assert result.details["per_dim_names"] == ["bright", "ignored", "cat"] and per_dim.shape == (4, 3, SIZE, SIZE)
    assert torch.all(per_dim[:, 1] == 0), "the ignored code's map is flat"
    bright, dark = region_mask(BRIGHT), region_mask(DARK)
    assert torch.all(per_dim[:2, 0][:, bright] == 1) and torch.all(per_dim[:2, 0][:, ~bright] == 0)
    with torch.no_grad():
        predicted = patch_gan.module.auxiliary(images)[:, 2:5].argmax(dim=1)
    assert predicted.tolist() == [0, 0, 1, 2]
    for i, where in [(0, bright), (1, bright), (2, dark)]:
        assert torch.all(per_dim[i, 2][where] == 1) and torch.all(per_dim[i, 2][~where] == 0)
    assert torch.all(per_dim[3] == 0), "a grey image drives no output"
    torch.testing.assert_close(result.details["outputs"][:, 2], patch_gan.module.auxiliary(images)[:, 2:5].amax(1))
    by_name = xgen.explain(patch_gan, images, plugin="q-gradcam", code="cat").anomaly_map
    torch.testing.assert_close(by_name, per_dim[:, 2])
    torch.testing.assert_close(xgen.explain(patch_gan, images, plugin="q-gradcam", code=1).anomaly_map, per_dim[:, 1])


def test_q_gradcam_without_a_declared_layout_explains_every_raw_column(images):
    module = PatchGAN()
    model = xgen.wrap(
        nn.Sequential(module.features, module.q),
        auxiliary=lambda x: module.q(module.features(x).flatten(1)),
        layer="0",
    )
    result = xgen.explain(model, images, plugin="q-gradcam", per_dim=True)
    assert result.details["per_dim_names"] == ["q0", "q1", "q2", "q3", "q4"]
    assert torch.all(result.details["per_dim"][:, [1, 4]] == 0)


def _tiny_infostylegan(seed: int = 0) -> tuple[xgen.Model, torch.Tensor]:
    torch.manual_seed(seed)
    arch = lookup("architecture", "infostylegan")(**TINY)
    model = arch.wrap(arch.build((1, SIZE, SIZE)).eval(), (1, SIZE, SIZE))
    return model, torch.rand(5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed + 1))


def _reference_maps(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One backward pass per code through infostylegan's D: Grad-CAM of Q's categorical max logit, the uniform means
    and the Bernoulli logit at `discriminator.conv`, upsampled, absolute value, min-max per map: (N, K, H, W)."""
    seen = []
    handle = module.discriminator.conv.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        q = module.auxiliary(x)
    finally:
        handle.remove()
    activations = seen[0]
    outputs = [q[:, 0:3].max(dim=1).values, q[:, 3], q[:, 4], q[:, 7]]
    maps = []
    for output in outputs:
        (grad,) = torch.autograd.grad(output.sum(), activations, retain_graph=True)
        cam = (grad.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1, keepdim=True)
        up = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False).abs()[:, 0]
        low, high = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
        maps.append((up - low) / (high - low))
    return torch.stack(maps, dim=1).detach()


def test_batched_per_code_maps_equal_one_backward_per_code():
    model, x = _tiny_infostylegan()
    assert model.module.auxiliary_outputs == [("cat0", slice(0, 3)), ("unif0", 3), ("unif1", 4), ("bern0", 7)]
    result = xgen.explain(model, x, plugin="q-gradcam", per_dim=True)
    assert result.details["layer"] == "discriminator.conv"
    torch.testing.assert_close(result.details["per_dim"], _reference_maps(model.module, x), atol=1e-5, rtol=1e-4)


def test_contract_default_explainer_and_refusals(images):
    model, x = _tiny_infostylegan(seed=3)
    check_explainer("disc-gradcam", model, x)
    check_explainer("q-gradcam", model, x, per_dim=True)
    assert (model.default_explainer, model.default_dimension_explainer) == ("disc-gradcam", "q-gradcam")
    torch.testing.assert_close(xgen.explain(model, x).score, torch.sigmoid(-model.module.discriminate(x)).detach())
    vae = xgen.wrap(TinyVAE())
    for plugin, argument in [("disc-gradcam", "discriminator="), ("q-gradcam", "auxiliary=")]:
        with pytest.raises(xgen.WrapError, match=f"pass it to xgen.wrap as {argument}"):
            xgen.explain(vae, images, plugin=plugin)
    with pytest.raises(xgen.XgenError, match=r"code=unif9 names no code of this model; choose one of 0 \(cat0\)"):
        xgen.explain(model, x, plugin="q-gradcam", code="unif9")
    heads = PatchGAN()
    odd = xgen.wrap(heads, discriminator=lambda t: heads.auxiliary(t)[:, :2])
    with pytest.raises(xgen.WrapError, match="one real/fake logit per image"):
        xgen.explain(odd, images, plugin="disc-gradcam")


def test_disc_score_is_disc_gradcams_score_and_ranks_what_q_gradcam_explains(images, tmp_path):
    model, x = _tiny_infostylegan(seed=2)
    expected = xgen.explain(model, x, plugin="disc-gradcam").score
    torch.testing.assert_close(xgen.score(model, x, "disc-score"), expected)
    assert model.default_scorer == "disc-score" and xgen.explain(model, x, plugin="q-gradcam").score is None
    with pytest.raises(xgen.XgenError, match="discriminator"):
        xgen.score(xgen.wrap(TinyVAE()), images, "disc-score")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(x):
        Image.fromarray((image[0].numpy() * 255).round().astype("uint8")).save(folder / f"{i}.png")
    xgen.save(model, tmp_path / "isg.pt")
    ran = CliRunner().invoke(
        app,
        [
            "explain",
            "--model",
            str(tmp_path / "isg.pt"),
            "--plugin",
            "q-gradcam",
            str(folder),
            "--out",
            str(tmp_path / "maps"),
        ],
    )
    assert ran.exit_code == 0, ran.output
    rows = (tmp_path / "maps" / "scores.csv").read_text().splitlines()[1:]
    assert len(rows) == len(x) and all(row.endswith(",scorer disc-score") and row.split(",")[1] for row in rows)


def test_traverse_rows_are_the_declared_codes_and_a_categorical_row_sweeps_its_classes():
    model, _ = _tiny_infostylegan(seed=1)
    result = xgen.traverse(model, n=2, steps=6)  # maps from the architecture's dimension explainer, q-gradcam
    assert result.names == ["cat0", "unif0", "unif1", "bern0"] and result.dims == [4, 7, 8, 9]
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(result.values[:, 0], classes.float().expand(2, 6))
    z = result.seeds[:, None].repeat(1, 6, 1)
    z[:, :, 4:7] = F.one_hot(classes, 3).float()
    with torch.no_grad():
        expected = model.decode(z.flatten(0, 1)).view(2, 6, 1, SIZE, SIZE)
        seeds = model.decode(result.seeds)
    torch.testing.assert_close(result.images[:, 0], expected, atol=1e-5, rtol=1e-4)
    per_dim = xgen.explain(model, seeds, plugin="q-gradcam", per_dim=True).details["per_dim"]
    assert result.plugin == "q-gradcam" and result.notes == []
    torch.testing.assert_close(result.maps, per_dim)
    torch.testing.assert_close(result.seed_images, seeds)
    chosen = xgen.traverse(model, n=2, steps=3, dims=[0, 8], plugin="q-gradcam")
    assert chosen.names == ["z0", "unif1"] and torch.all(chosen.maps[:, 0] == 0)
    torch.testing.assert_close(chosen.maps[:, 1], per_dim[:, 2])
    assert any("no map of z0" in note for note in chosen.notes)


def test_every_option_is_documented():
    page = (Path(__file__).parent.parent / "docs" / "methods" / "infostylegan.md").read_text()
    disc, q = page.split("**`disc-gradcam`**", 1)[1].split("**`q-gradcam`**", 1)
    for name, section in [("disc-gradcam", disc), ("q-gradcam", q)]:
        for option in lookup("explainer", name).options():
            assert f"| `{option}` |" in section, f"option {option} of {name} missing from docs/methods/infostylegan.md"
