"""`xgen.wrap` and the checks `xgen.explain` makes before any work: capabilities, layers, and the input."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

import xgen
import xgen.plugins
from xgen.testing import EncoderOnly, TinyVAE

SHAPE = (1, 16, 16)


def images(n: int = 2, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def one_sentence(message: str) -> None:
    assert "\n" not in message, repr(message)
    assert message.endswith("."), message


class Counter:
    """A callable that counts its calls and forwards to `fn`."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


# -- encode / decode -------------------------------------------------------------------------------------------------


def test_a_module_with_encode_and_decode_methods_wraps_without_arguments():
    module = TinyVAE()
    model = xgen.wrap(module)
    assert model.capabilities == {"encode", "decode", "layers"}
    x = images(3)
    latent = model.encode(x)
    mu, logvar = module.encode(x)
    assert torch.equal(latent.mean, mu) and torch.equal(latent.logvar, logvar)
    assert latent.mean.shape == (3, 4)
    assert torch.equal(model.reconstruct(x), module.decode(mu))
    assert model.reconstruct(x).shape == x.shape
    assert xgen.wrap(model) is model


def test_a_latent_sample_is_reparameterised_and_seeded():
    latent = xgen.Latent(torch.zeros(2, 3), torch.full((2, 3), 2 * np.log(3.0)))  # std 3
    a = latent.sample(torch.Generator().manual_seed(1))
    b = latent.sample(torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, 3 * torch.randn(2, 3, generator=torch.Generator().manual_seed(1)))
    plain = xgen.Latent(torch.ones(2, 3))
    assert plain.sample() is plain.mean


class TensorEncoder(nn.Module):
    """encode returns a bare tensor; decode maps it back to images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def encode(self, x):
        return self.conv(x).mean(dim=(2, 3))

    def decode(self, z):
        return torch.sigmoid(z.sum(1)).view(-1, 1, 1, 1).expand(-1, *SHAPE)


def test_an_encoder_returning_a_tensor_gives_a_latent_without_logvar():
    model = xgen.wrap(TensorEncoder())
    x = images(2)
    latent = model.encode(x)
    assert latent.logvar is None
    assert latent.mean.shape == (2, 2)
    assert torch.equal(latent.sample(), latent.mean)
    assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize(
    ("encode", "expect_logvar"),
    [
        pytest.param(lambda x: (x.flatten(1), x.flatten(1) * 0), True, id="tuple"),
        pytest.param(lambda x: [x.flatten(1), x.flatten(1) * 0], True, id="list"),
        pytest.param(lambda x: (x.flatten(1),), False, id="one-tuple"),
        pytest.param(lambda x: x.flatten(1), False, id="tensor"),
    ],
)
def test_encode_callables_may_return_a_tensor_or_a_mean_logvar_pair(encode, expect_logvar):
    x = images(2)
    latent = xgen.wrap(nn.Identity(), encode=encode).encode(x)
    assert torch.equal(latent.mean, x.flatten(1))
    assert (latent.logvar is not None) == expect_logvar


@pytest.mark.parametrize(
    "returned",
    [
        pytest.param(lambda x: {"mean": x}, id="dict"),
        pytest.param(lambda x: x.flatten(1).numpy(), id="numpy"),
        pytest.param(lambda x: (), id="empty-tuple"),
        pytest.param(lambda x: (x, "logvar"), id="tuple-with-a-string"),
        pytest.param(lambda x: None, id="none"),
    ],
)
def test_an_encoder_returning_the_wrong_type_is_a_wrap_error(returned):
    model = xgen.wrap(EncoderOnly(), encode=returned)
    with pytest.raises(xgen.WrapError) as info:
        model.encode(images(1))
    assert "must return a tensor or a (mean, logvar) tuple" in str(info.value)
    assert "wrap(encode=...)" in str(info.value)
    one_sentence(str(info.value))
    with pytest.raises(xgen.WrapError, match="must return a tensor or a"):
        xgen.explain(model, images(1), plugin="vae-gradcam")


def test_encode_and_decode_callables_supply_what_the_module_lacks():
    module = EncoderOnly(latent=3)
    assert xgen.wrap(module).capabilities == {"layers"}
    decoder = nn.Sequential(nn.Linear(3, 256), nn.Sigmoid(), nn.Unflatten(1, SHAPE))
    model = xgen.wrap(module, encode=module, decode=decoder)
    assert model.capabilities == {"encode", "decode", "layers"}
    x = images(2)
    assert torch.equal(model.encode(x).mean, module(x))
    assert torch.equal(model.reconstruct(x), decoder(module(x)))
    exp = xgen.explain(model, x, plugin="vae-gradcam")
    assert exp.details["layer"] == "features.2"
    assert exp.anomaly_map.shape == (2, 16, 16)


def test_explicit_callables_take_precedence_over_the_module_methods():
    module = TinyVAE()
    encode = Counter(lambda x: torch.zeros(x.shape[0], 4))
    model = xgen.wrap(module, encode=encode)
    assert torch.equal(model.encode(images(2)).mean, torch.zeros(2, 4))
    assert encode.calls == 1
    torch.testing.assert_close(model.reconstruct(images(1)), module.decode(torch.zeros(1, 4)))


def test_heads_come_from_arguments_or_from_conventional_methods():
    class WithClassifier(TinyVAE):
        def classify(self, x):
            return x.flatten(1).mean(1, keepdim=True)

    fn = lambda x: x.sum()  # noqa: E731
    assert xgen.wrap(TinyVAE(), discriminator=fn).head("discriminator") is fn
    model = xgen.wrap(WithClassifier())
    assert {"classifier"} <= model.capabilities and "discriminator" not in model.capabilities
    torch.testing.assert_close(model.head("classifier")(torch.ones(1, *SHAPE)), torch.ones(1, 1))
    with pytest.raises(xgen.WrapError, match=r"pass it to xgen\.wrap as auxiliary="):
        model.head("auxiliary")


def test_wrap_refuses_what_is_not_a_module_or_not_callable():
    with pytest.raises(xgen.WrapError, match=r"needs a torch.nn.Module, got function"):
        xgen.wrap(lambda x: x)
    with pytest.raises(xgen.WrapError, match=r"wrap argument decode= must be callable, got str"):
        xgen.wrap(EncoderOnly(), decode="decoder")
    with pytest.raises(xgen.WrapError, match=r"pass it to xgen.wrap as decode="):
        xgen.wrap(EncoderOnly()).decode(torch.zeros(1, 4))
    with pytest.raises(xgen.WrapError, match=r"pass it to xgen.wrap as encode="):
        xgen.wrap(EncoderOnly()).encode(images(1))


# -- layers ----------------------------------------------------------------------------------------------------------


def test_dotted_layer_names_select_sub_modules_and_the_explained_layer():
    module = EncoderOnly()
    model = xgen.wrap(module, encode=module, layer="features.2")
    assert model.layer("features.2") is module.features[2]
    assert model.layer("head.3") is module.head[3]
    x = images(2)
    at_2 = xgen.explain(model, x, plugin="vae-gradcam")
    assert at_2.details["layer"] == "features.2"
    first = xgen.wrap(module, encode=module, layer="features.0")
    at_0 = xgen.explain(first, x, plugin="vae-gradcam")
    assert at_0.details["layer"] == "features.0"
    assert not torch.allclose(at_0.anomaly_map, at_2.anomaly_map)  # the layer really changes the map
    by_option = xgen.explain(model, x, plugin="vae-gradcam", layer="features.0")
    assert torch.equal(by_option.anomaly_map, at_0.anomaly_map)


def test_an_unknown_layer_suggests_the_closest_and_lists_the_conv_layers():
    module = EncoderOnly()
    with pytest.raises(xgen.WrapError) as info:
        xgen.wrap(module, encode=module, layer="feature.2")
    message = str(info.value)
    assert "has no layer 'feature.2'. Did you mean 'features.2'?" in message
    assert "Its Conv2d layers are: features.0, features.2." in message
    model = xgen.wrap(module, encode=module)
    with pytest.raises(xgen.WrapError, match=r"no layer 'encoder\.2'.*Conv2d layers are: features\.0, features\.2"):
        xgen.explain(model, images(1), plugin="vae-gradcam", layer="encoder.2")


class OutOfOrder(nn.Module):
    """Registration order differs from execution order: `late` is defined first but runs last in encode, and
    `decoder_conv` (the last Conv2d in named_modules order) never runs when encoding."""

    def __init__(self) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(0)
        self.late = nn.Conv2d(4, 4, 3, padding=1)
        self.early = nn.Conv2d(1, 4, 3, padding=1)
        self.to_latent = nn.Linear(4, 3)
        self.from_latent = nn.Linear(3, 16 * 16)
        self.decoder_conv = nn.Conv2d(1, 1, 3, padding=1)
        torch.random.set_rng_state(generator_state)

    def encode(self, x):
        h = self.late(torch.relu(self.early(x)))
        return self.to_latent(h.mean(dim=(2, 3)))

    def decode(self, z):
        return torch.sigmoid(self.decoder_conv(self.from_latent(z).view(-1, 1, 16, 16)))


def test_the_default_attention_layer_is_the_last_conv_run_by_encode():
    module = OutOfOrder()
    convs = [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs == ["late", "early", "decoder_conv"]  # neither first nor last in definition order
    model = xgen.wrap(module)
    x = images(2)
    assert model.attention_layer(x) == "late"
    exp = xgen.explain(xgen.wrap(OutOfOrder()), x, plugin="vae-gradcam")
    assert exp.details["layer"] == "late"
    assert xgen.wrap(OutOfOrder(), layer="early").attention_layer(x) == "early"  # an explicit layer= wins


def test_no_conv_run_by_encode_asks_for_layer():
    model = xgen.wrap(nn.Sequential(nn.Flatten(), nn.Linear(256, 3)), encode=lambda x: x.flatten(1)[:, :3])
    with pytest.raises(xgen.WrapError, match="no Conv2d layer runs when this model encodes; pass layer="):
        model.attention_layer(images(1))


# -- requires, checked before any work -------------------------------------------------------------------------------


class Needs(xgen.Explainer):
    """Records its calls; `requires` is set per test."""

    name = "needs"
    description = "An explainer with configurable requirements."
    calls: ClassVar[list[int]] = []

    def explain(self, model, x):
        type(self).calls.append(x.shape[0])
        return xgen.Explanation(anomaly_map=x.mean(1))


@pytest.fixture
def needs(registry):
    def register(requires: set[str]) -> type[Needs]:
        cls = type("NeedsThis", (Needs,), {"requires": frozenset(requires), "calls": []})

        class Plugin:
            @xgen.hookimpl
            def xgen_register_explainers(self, register):
                register(cls)

        registry.add_plugin(Plugin(), "needs-plugin")
        return cls

    yield register
    registry.remove_plugin("needs-plugin")


@pytest.mark.parametrize(
    ("requirement", "argument"),
    [
        ("decode", "decode="),
        ("encode", "encode="),
        ("classifier", "classifier="),
        ("discriminator", "discriminator="),
        ("auxiliary", "auxiliary="),
    ],
)
def test_an_unmet_requirement_fails_before_any_work_naming_the_wrap_argument(needs, requirement, argument):
    cls = needs({requirement, "layers"})
    encode = Counter(lambda x: x.flatten(1))
    decode = Counter(lambda z: z.view(-1, *SHAPE))
    kwargs = {"encode": encode, "decode": decode}
    kwargs.pop(requirement, None)
    model = xgen.wrap(nn.Identity(), **kwargs)
    with pytest.raises(xgen.WrapError) as info:
        xgen.explain(model, images(2), plugin="needs")
    message = str(info.value)
    assert f"explainer 'needs' requires '{requirement}'" in message
    assert f"pass it to xgen.wrap as {argument}" in message
    one_sentence(message)
    assert cls.calls == [] and encode.calls == 0 and decode.calls == 0


def test_a_met_requirement_runs_the_explainer(needs):
    cls = needs({"decode"})
    exp = xgen.explain(xgen.wrap(nn.Identity(), decode=lambda z: z), images(3), plugin="needs")
    assert cls.calls == [3]
    torch.testing.assert_close(exp.anomaly_map, images(3).mean(1))


def test_requirements_are_checked_before_the_input(needs):
    cls = needs({"classifier"})
    with pytest.raises(xgen.WrapError, match="classifier="):
        xgen.explain(xgen.wrap(TinyVAE()), torch.full((1, 1, 16, 16), 7.0), plugin="needs")
    assert cls.calls == []


def test_a_torchscript_model_lacks_layers(needs):
    cls = needs({"layers"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in recent torch
        scripted = torch.jit.script(TinyVAE())
    with pytest.raises(xgen.WrapError, match=r"TorchScript model does not allow; wrap the original torch\.nn\.Module"):
        xgen.explain(scripted, images(1), plugin="needs")
    assert cls.calls == []


# -- input checks ------------------------------------------------------------------------------------------------------


def nan_images() -> torch.Tensor:
    x = images(2)
    x[1, 0, 3, 4] = float("nan")
    return x


def inf_images() -> torch.Tensor:
    x = images(2)
    x[0, 0, 0, 0] = float("inf")
    return x


BAD_INPUTS = [
    pytest.param(lambda: torch.rand(16, 16), r"must have shape \(N, C, H, W\), got \(16, 16\)", id="2d"),
    pytest.param(
        lambda: torch.rand(1, 1, 1, 16, 16), r"must have shape \(N, C, H, W\), got \(1, 1, 1, 16, 16\)", id="5d"
    ),
    pytest.param(
        lambda: [[0.5]], r"must be a torch tensor or a numpy array of shape \(N, C, H, W\), got list", id="list"
    ),
    pytest.param(
        lambda: (images(2) * 255).to(torch.uint8),
        r"images are torch\.uint8; pass floats in \[0, 1\] \(for 8-bit images: x\.float\(\) / 255\)",
        id="uint8",
    ),
    pytest.param(lambda: torch.ones(2, *SHAPE, dtype=torch.int64), r"images are torch\.int64", id="int64"),
    pytest.param(nan_images, r"contain 1 NaN or Inf values; clean or drop those images first", id="nan"),
    pytest.param(inf_images, r"contain 1 NaN or Inf values", id="inf"),
    pytest.param(lambda: images(2) * 255, r"span \[0\.\d+, 25\d\.?\d*\]; scale them to \[0, 1\] first", id="above-one"),
    pytest.param(lambda: images(2) - 0.5, r"span \[-0\.\d+, 0\.\d+\]; scale them to \[0, 1\] first", id="negative"),
    pytest.param(
        lambda: images(2, shape=(3, 16, 16)), r"images are 3x16x16 \(CxHxW\) but the model expects 1x16x16", id="rgb"
    ),
    pytest.param(
        lambda: images(2, shape=(1, 28, 28)), r"images are 1x28x28 \(CxHxW\) but the model expects 1x16x16", id="size"
    ),
    pytest.param(lambda: torch.rand(0, *SHAPE), r"the batch of images is empty; pass at least one image", id="empty"),
]


@pytest.mark.parametrize(("make", "message"), BAD_INPUTS)
def test_bad_input_is_an_input_error_of_one_sentence_before_any_work(needs, make, message):
    cls = needs(set())
    encode = Counter(TinyVAE().encode)
    model = xgen.wrap(TinyVAE(), encode=encode, input_shape=SHAPE)
    with pytest.raises(xgen.InputError, match=message) as info:
        xgen.explain(model, make(), plugin="needs")
    one_sentence(str(info.value))
    assert cls.calls == [] and encode.calls == 0


def test_good_input_in_other_forms_is_accepted(needs):
    cls = needs(set())
    model = xgen.wrap(TinyVAE(), input_shape=SHAPE)
    x = images(2)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0  # the bounds themselves are valid
    from_numpy = xgen.explain(model, x.numpy(), plugin="needs")
    single = xgen.explain(model, x[0], plugin="needs")  # (C, H, W): a batch of one
    doubles = xgen.explain(model, x.double(), plugin="needs")
    assert cls.calls == [2, 1, 2]
    torch.testing.assert_close(from_numpy.anomaly_map, x.mean(1))
    torch.testing.assert_close(single.anomaly_map, x[:1].mean(1))
    assert doubles.anomaly_map.dtype == torch.float32


def test_without_an_input_shape_any_size_is_accepted(needs):
    needs(set())
    exp = xgen.explain(xgen.wrap(TinyVAE()), images(1, shape=(3, 8, 12)), plugin="needs")
    assert exp.anomaly_map.shape == (1, 8, 12)


def test_a_plain_module_is_wrapped_by_explain(needs):
    needs({"encode", "decode"})
    exp = xgen.explain(TinyVAE(), images(2), plugin="needs")
    assert exp.anomaly_map.shape == (2, 16, 16)


def test_no_plugin_and_no_default_explainer_says_how_to_choose():
    with pytest.raises(xgen.XgenError, match=r"names no default explainer; pass plugin=\.\.\."):
        xgen.explain(xgen.wrap(TinyVAE()), images(1))


class Spy(xgen.Explainer):
    name = "spy"
    description = "Records whether the module was in training mode when explained."
    seen: ClassVar[list[bool]] = []

    def explain(self, model, x):
        type(self).seen.append(model.module.training)
        return xgen.Explanation(anomaly_map=x.mean(1))


class SpyPlugin:
    @xgen.hookimpl
    def xgen_register_explainers(self, register):
        register(Spy)


def test_explain_runs_the_module_in_eval_mode_and_restores_its_mode(registry):
    Spy.seen.clear()
    module = TinyVAE().train()
    with xgen.plugins.plugin(SpyPlugin(), "spy-plugin"):
        xgen.explain(module, images(1), plugin="spy")
        module.eval()
        xgen.explain(module, images(1), plugin="spy")
    assert Spy.seen == [False, False]
    assert module.training is False
    module.train()
    with xgen.plugins.plugin(SpyPlugin(), "spy-plugin"):
        xgen.explain(module, images(1), plugin="spy")
    assert module.training is True
