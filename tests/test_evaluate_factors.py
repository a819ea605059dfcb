"""`xgen evaluate` on data with ground-truth factors: the disentanglement metrics are chosen or refused by what the
data and the model provide, and equal the metric called directly on the same codes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xgen

SPEC = "dsprites:train_n=16,test_n=48"


class TinyVAE(nn.Module):
    """A seeded 64x64 VAE with a conv encoder (mean, logvar) and a decoder: enough for recon-error and the codes."""

    def __init__(self, latent: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 4, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 8))
        self.latent = latent
        self.decoder = nn.Sequential(nn.Linear(latent, 64 * 64), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h[:, : self.latent], h[:, self.latent :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, 64, 64)


@pytest.fixture
def model():
    return xgen.wrap(TinyVAE())


def test_mig_binned_is_chosen_and_equals_the_metric_on_the_codes(model):
    result = xgen.evaluate(model, SPEC, plugin="recon-error")
    assert [r.spec for r in result.metrics] == ["mig-binned"]
    data = xgen.dataset(SPEC)
    test = data.test()
    with torch.no_grad():
        codes = model.encode(test.images).mean
    assert result["mig-binned"] == xgen.metric("mig-binned")(codes=codes, factors=data.split_factors(test))
    assert any("--metric mig" in w and "--metric factorvae-score" in w for w in result.warnings)


def test_sampling_metrics_run_when_asked(model):
    spec = "factorvae-score:train_votes=30,eval_votes=20,variance_images=200,batch=8"
    result = xgen.evaluate(model, SPEC, plugin="recon-error", metrics=[spec, "mig:images=300,samples=100"])
    assert 0.0 <= result[spec] <= 1.0
    assert 0.0 <= result["mig:images=300,samples=100"] <= 1.0
    assert not any("left out by default" in w for w in result.warnings)


def test_data_without_factors_is_refused_before_any_work(model):
    digits = xgen.wrap(nn.Identity(), encode=lambda x: x.flatten(1), decode=lambda z: z, input_shape=(1, 28, 28))
    with pytest.raises(
        xgen.XgenError, match=r"needs codes, but digits:normal=1 has no ground-truth factors; .*dsprites"
    ):
        xgen.evaluate(digits, "digits:normal=1", plugin="recon-error", metrics=["mig-binned"])
    with pytest.raises(xgen.XgenError, match=r"needs data, but digits:normal=1 has no ground-truth factors"):
        xgen.evaluate(digits, "digits:normal=1", plugin="recon-error", metrics=["mig"])


def test_a_collapsed_latent_scores_zero_with_a_warning_that_says_why(model):
    torch.nn.init.zeros_(model.module.encoder[-1].weight)
    spec = "factorvae-score:train_votes=10,eval_votes=10,variance_images=100"
    result = xgen.evaluate(model, SPEC, plugin="recon-error", metrics=[spec])
    assert result[spec] == 0.0
    assert any("no latent varies enough" in w and "posterior collapse" in w for w in result.warnings)
