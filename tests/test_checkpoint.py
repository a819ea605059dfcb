"""Checkpoints: round trips, atomic writes, refusing code, TorchScript, and a clear error for every foreign file."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch

import xgen
import xgen.plugins
from xgen.checkpoint import FORMAT, FORMAT_VERSION
from xgen.testing import TinyVAE

SHAPE = (1, 16, 16)
SMALL = {"latent": 4, "hidden": 32}


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def conv_vae(seed: int = 0) -> xgen.Model:
    """An untrained, seeded conv-vae built through its Architecture (no training: fast)."""
    arch = xgen.plugins.lookup("architecture", "conv-vae")(**SMALL)
    torch.manual_seed(seed)
    module = arch.build(SHAPE).eval()
    return arch.wrap(module, SHAPE)


def one_sentence(message: str) -> None:
    assert "\n" not in message and "\x1b" not in message, repr(message)
    assert message.endswith("."), message


@pytest.fixture(autouse=True)
def _quiet_torchscript():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        yield


# -- round trips ----------------------------------------------------------------------------------------------------


def test_a_trained_conv_vae_round_trips_with_identical_maps_and_metadata(tmp_path):
    path = tmp_path / "sub" / "model.pt"
    model = xgen.train("conv-vae", "digits:normal=1,size=16", epochs=1, options=SMALL, seed=0, out=path, device="cpu")
    assert path.is_file()
    loaded = xgen.load(path)
    assert loaded.architecture == "conv-vae"
    assert loaded.config == {"latent": 4, "hidden": 32, "lr": 1e-3}
    assert loaded.input_shape == SHAPE
    assert loaded.default_explainer == "vae-gradcam"
    recorded = loaded.metadata["training"]["data"]  # a spec that rebuilds the training data
    assert xgen.dataset(recorded).config() == xgen.dataset("digits:normal=1,size=16").config()
    assert loaded.metadata["training"]["epochs"] == 1
    assert loaded.module.training is False
    for key, value in model.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value), key
    x = images()
    before = xgen.explain(model, x)  # the default explainer, from the architecture
    after = xgen.explain(loaded, x)
    assert before.details["layer"] == after.details["layer"] == "encoder.2"
    assert torch.equal(before.anomaly_map, after.anomaly_map)
    assert before.anomaly_map.std() > 0


def test_save_then_load_of_a_built_model_gives_identical_maps_and_reconstructions(tmp_path):
    model = conv_vae(seed=3)
    path = xgen.save(model, tmp_path / "built.pt")
    loaded = xgen.load(path)
    x = images(seed=1)
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    for options in ({}, {"sign": "relu", "dim": 1}):
        a = xgen.explain(model, x, plugin="vae-gradcam", **options)
        b = xgen.explain(loaded, x, plugin="vae-gradcam", **options)
        assert torch.equal(a.anomaly_map, b.anomaly_map)
    other = xgen.load(xgen.save(conv_vae(seed=4), tmp_path / "other.pt"))
    assert not torch.equal(other.reconstruct(x), loaded.reconstruct(x))  # the weights really come from the file


def test_an_xgen_checkpoint_holds_only_plain_data_and_tensors(tmp_path):
    path = xgen.save(conv_vae(), tmp_path / "plain.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT and payload["format_version"] == FORMAT_VERSION
    assert payload["architecture"] == "conv-vae"
    assert payload["input_shape"] == list(SHAPE)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []


def test_save_refuses_a_model_no_architecture_built(tmp_path):
    with pytest.raises(xgen.CheckpointError, match=r"torch\.jit\.save\(torch\.jit\.script\(module\), path\)"):
        xgen.save(xgen.wrap(TinyVAE()), tmp_path / "wrapped.pt")
    assert list(tmp_path.iterdir()) == []


# -- atomic writes --------------------------------------------------------------------------------------------------


def test_save_leaves_no_part_files(tmp_path):
    xgen.save(conv_vae(), tmp_path / "a.pt")
    xgen.save(conv_vae(seed=1), tmp_path / "a.pt")  # overwriting is atomic too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_a_failing_save_keeps_the_existing_file_whole(tmp_path, monkeypatch):
    path = xgen.save(conv_vae(), tmp_path / "keep.pt")
    original = path.read_bytes()
    written: list[Path] = []

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")  # a write interrupted midway
        written.append(Path(f))
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="No space left"):
        xgen.save(conv_vae(seed=1), path)
    monkeypatch.undo()
    assert written and written[0] != path  # it wrote beside the target, not into it
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.pt"]
    assert xgen.load(path).architecture == "conv-vae"


# -- code in checkpoints --------------------------------------------------------------------------------------------


def test_a_pickled_module_is_refused_unless_trusted(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(TinyVAE(seed=2), path)
    with pytest.raises(xgen.CheckpointError) as info:
        xgen.load(path)
    message = str(info.value)
    assert "arbitrary code" in message and "trust=True" in message and "--trust-checkpoint" in message
    one_sentence(message)
    model = xgen.load(path, trust=True)
    assert isinstance(model.module, TinyVAE)
    x = torch.rand(2, *SHAPE)
    assert torch.equal(model.reconstruct(x), xgen.wrap(TinyVAE(seed=2)).reconstruct(x))


def test_a_pickled_module_in_the_legacy_format_is_refused_with_the_same_advice(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save(TinyVAE(seed=2), path, _use_new_zipfile_serialization=False)
    with pytest.raises(xgen.CheckpointError) as info:
        xgen.load(path)
    assert "xgen.testing.TinyVAE" in str(info.value) and "--trust-checkpoint" in str(info.value)
    one_sentence(str(info.value))
    assert isinstance(xgen.load(path, trust=True).module, TinyVAE)


class MakesMarker:
    """Unpickling this object calls os.mkdir(marker): a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def write_torch_zip(path: Path, marker: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": MakesMarker(marker)}, path)


def write_torch_legacy(path: Path, marker: Path) -> None:
    torch.save({"payload": MakesMarker(marker)}, path, _use_new_zipfile_serialization=False)


def write_pickle(protocol: int):
    def write(path: Path, marker: Path) -> None:
        with open(path, "wb") as fh:
            pickle.dump({"payload": MakesMarker(marker)}, fh, protocol=protocol)

    return write


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(write_torch_zip, id="torch.save"),
        pytest.param(write_torch_legacy, id="torch.save-legacy"),
        pytest.param(write_pickle(0), id="pickle-protocol-0"),
        pytest.param(write_pickle(2), id="pickle-protocol-2"),
        pytest.param(write_pickle(pickle.HIGHEST_PROTOCOL), id="pickle-highest"),
    ],
)
def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, write):
    marker = tmp_path / "marker-created"
    path = tmp_path / "evil.pt"
    write(path, marker)
    assert not marker.exists()
    with pytest.raises(xgen.CheckpointError) as info:
        xgen.load(path)
    assert not marker.exists(), "loading ran code from the checkpoint"
    message = str(info.value)
    assert "mkdir" in message and "--trust-checkpoint" in message
    one_sentence(message)


# -- TorchScript ----------------------------------------------------------------------------------------------------


@pytest.fixture
def abs_error(registry):
    """A decode-based explainer (the DESIGN.md example) registered for the test."""

    class AbsError(xgen.Explainer):
        name = "abs-error"
        description = "Mean absolute reconstruction error per pixel."
        requires = frozenset({"decode"})

        def explain(self, model, x):
            err = (model.reconstruct(x) - x).abs().mean(dim=1)
            return xgen.Explanation(anomaly_map=err, score=err.flatten(1).mean(dim=1))

    class Plugin:
        @xgen.hookimpl
        def xgen_register_explainers(self, register):
            register(AbsError)

    with xgen.plugins.plugin(Plugin(), "abs-error-plugin"):
        yield AbsError


def test_a_torchscript_file_loads_and_works_with_a_decode_based_explainer(tmp_path, abs_error):
    original = TinyVAE(seed=5)
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(original), str(path))
    model = xgen.load(path)
    assert isinstance(model.module, torch.jit.ScriptModule)
    assert model.capabilities == {"encode", "decode"}
    assert "layers" not in model.capabilities
    x = torch.rand(4, *SHAPE)
    scripted = xgen.explain(model, x, plugin="abs-error")
    eager = xgen.explain(xgen.wrap(original), x, plugin="abs-error")
    torch.testing.assert_close(scripted.anomaly_map, eager.anomaly_map)
    torch.testing.assert_close(scripted.score, eager.score)
    with pytest.raises(xgen.WrapError) as info:
        xgen.explain(model, x, plugin="vae-gradcam")
    assert "TorchScript" in str(info.value) and "wrap the original torch.nn.Module" in str(info.value)
    with pytest.raises(xgen.WrapError, match="TorchScript"):
        model.layer("encoder.0")


def test_a_corrupt_torchscript_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(TinyVAE()), str(path))
    import zipfile

    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("data.pkl"):
                dst.writestr(item, src.read(item))
    with pytest.raises(xgen.CheckpointError, match="looks like TorchScript but does not load"):
        xgen.load(broken)


# -- foreign files --------------------------------------------------------------------------------------------------


def write_state_dict(path: Path) -> None:
    torch.save(TinyVAE().state_dict(), path)


def write_random_bytes(path: Path) -> None:
    path.write_bytes(torch.randint(0, 256, (512,), generator=torch.Generator().manual_seed(0)).byte().numpy().tobytes())


def write_text(path: Path) -> None:
    path.write_text("epoch,loss\n1,0.5\n2,0.25\n", encoding="utf-8")


def write_empty(path: Path) -> None:
    path.write_bytes(b"")


def write_foreign_dict(path: Path) -> None:
    torch.save({"epoch": 3, "model": TinyVAE().state_dict(), "optimizer": {"lr": 0.1}}, path)


def write_list(path: Path) -> None:
    torch.save([torch.zeros(2), torch.ones(2)], path)


def write_truncated(path: Path) -> None:
    xgen.save(conv_vae(), path)
    path.write_bytes(path.read_bytes()[:2000])


FOREIGN = [
    pytest.param(write_state_dict, ["bare weights", "load_state_dict", "xgen.wrap(module)"], id="state-dict"),
    pytest.param(write_random_bytes, ["not a PyTorch checkpoint", "xgen.save or torch.jit.save"], id="random"),
    pytest.param(write_text, ["not a PyTorch checkpoint", "xgen.save or torch.jit.save"], id="text"),
    pytest.param(write_empty, ["not a PyTorch checkpoint", "xgen.save or torch.jit.save"], id="empty"),
    pytest.param(write_foreign_dict, ["not an xgen checkpoint", "'epoch'", "xgen.save"], id="foreign-dict"),
    pytest.param(write_list, ["not an xgen checkpoint", "list", "xgen.save"], id="list"),
    pytest.param(write_truncated, ["not a PyTorch checkpoint", "xgen.save"], id="truncated"),
]


@pytest.mark.parametrize(("write", "fragments"), FOREIGN)
def test_a_foreign_file_is_a_checkpoint_error_that_says_what_to_do(tmp_path, write, fragments):
    path = tmp_path / "foreign.pt"
    write(path)
    with pytest.raises(xgen.CheckpointError) as info:
        xgen.load(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert str(path) in message
    one_sentence(message)


def test_a_missing_path_is_a_checkpoint_error_with_how_to_make_one(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(xgen.CheckpointError) as info:
        xgen.load(path)
    assert "does not exist" in str(info.value) and f"xgen train conv-vae --data digits:normal=1 --out {path}" in str(
        info.value
    )
    one_sentence(str(info.value))


def test_a_directory_is_a_checkpoint_error(tmp_path):
    with pytest.raises(xgen.CheckpointError, match="is a folder; pass the checkpoint file inside it"):
        xgen.load(tmp_path)


def test_a_checkpoint_from_a_newer_xgen_asks_for_an_upgrade(tmp_path):
    path = xgen.save(conv_vae(), tmp_path / "new.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(xgen.CheckpointError, match=r"newer xgen .* upgrade xgen"):
        xgen.load(path)


def test_weights_that_do_not_fit_the_config_are_a_checkpoint_error(tmp_path):
    path = xgen.save(conv_vae(), tmp_path / "mismatch.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["latent"] = 5
    torch.save(payload, path)
    with pytest.raises(xgen.CheckpointError, match="the weights do not fit architecture 'conv-vae'") as info:
        xgen.load(path)
    one_sentence(str(info.value))


class TinyArch(xgen.Architecture):
    name = "tiny-arch"
    description = "A TinyVAE as an architecture."
    seed: int = 0

    def build(self, input_shape):
        return TinyVAE(channels=input_shape[0], size=input_shape[1], seed=self.seed)


class TinyArchPlugin:
    @xgen.hookimpl
    def xgen_register_models(self, register):
        register(TinyArch)


def test_a_checkpoint_naming_an_architecture_no_plugin_provides(tmp_path, registry):
    with xgen.plugins.plugin(TinyArchPlugin(), "tiny-arch-plugin"):
        arch = TinyArch(seed="7")
        model = arch.wrap(arch.build(SHAPE), SHAPE)
        path = xgen.save(model, tmp_path / "tiny.pt")
        assert xgen.load(path).config == {"seed": 7}  # loads while its plugin is installed
    with pytest.raises(xgen.CheckpointError) as info:
        xgen.load(path)
    message = str(info.value)
    assert "needs architecture 'tiny-arch'" in message and "install the plugin that defines it" in message
    one_sentence(message)
