"""The claims ported from the three result scripts (CAVGA's Table 8 ablation, P-WAE's comparisons and ablations, the
stacked-RBM claims of the reproducibility report): their grids at each scale, runs shared between claims, and the
verdicts their findings reach on synthetic records made to hold, to fail and to be within noise; one claim runs end
to end on a tiny grid."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch

import xgen
from xgen.claims import FAILS, HOLDS, UNTESTABLE
from xgen.plugins import lookup

CAVGA = ["cavga-l-ae-improves-iou", "cavga-conv-z-beats-flat-z", "cavga-weak-beats-unsupervised"]
PWAE = [
    "pwae-beats-vae",
    "pwae-tile-rule-helps",
    "pwae-hsic-helps",
    "pwae-jigsaw-helps",
    "pwae-student-t-swd-beats-gaussian-kl",
    "pwae-hsic-raises-feature-diversity",
]
RBM = ["rbm-gumbel-mnist-figure-12", "vae-gradcam-beats-rbm-gumbel"]


def claim(name: str) -> xgen.Claim:
    return lookup("claim", name)()


def grid(names: list[str], scale: str) -> dict[str, list[xgen.Run]]:
    return {name: claim(name).runs(scale, claim(name).data) for name in names}


def record(run: xgen.Run, result: dict) -> dict:
    return {"key": run.key, "run": run.as_dict(), "result": result, "folder": f"runs/{run.folder_name}"}


def test_every_ported_claim_is_registered_with_its_paper(registry):
    papers = {name: claim(name).paper for name in CAVGA + PWAE + RBM}
    assert papers == {**dict.fromkeys(CAVGA, "003"), **dict.fromkeys(PWAE, "002"), **dict.fromkeys(RBM, "000")}
    for name in CAVGA + PWAE + RBM:
        c = claim(name)
        assert c.citation and c.source and c.paper_value and c.description


def test_cavga_ablation_grid_is_the_documented_one_and_shared(registry):
    default = grid(CAVGA, "default")
    union = {r.key: r for runs in default.values() for r in runs}
    assert len(union) == 4 * 5 * 3, "4 data sets x 5 variants x seeds 0-2, each trained once"
    assert {r.key for r in default["cavga-l-ae-improves-iou"]} == {r.key for r in default["cavga-conv-z-beats-flat-z"]}
    assert {r.variant for r in default["cavga-weak-beats-unsupervised"]} == {"weak", "conv+ae"}
    shared = {r.key for r in default["cavga-weak-beats-unsupervised"]} & {
        r.key for r in default["cavga-l-ae-improves-iou"]
    }
    assert len(shared) == 4 * 3, "conv+ae is trained once for both claims"
    assert {r.data for r in union.values()} == {
        "textures:brick",
        "textures:grass",
        "textures:gravel",
        "digits:normal=1,size=32",
    }
    assert all(r.settings == {"epochs": None, "normalize": "per-image", "options": {}} for r in union.values())
    quick = {r.key: r for runs in grid(CAVGA, "quick").values() for r in runs}
    assert len(quick) == 5 * 2 and len({r.data for r in quick.values()}) == 1
    assert {r.seed for r in quick.values()} == {0, 1}
    paper = [r for runs in grid(CAVGA, "paper").values() for r in runs]
    assert all("size=128" in r.data and r.settings["epochs"] == 150 for r in paper)
    assert all(r.settings["options"]["backbone"] == "resnet18" for r in paper)
    mvtec = claim("cavga-l-ae-improves-iou").runs("default", ["mvtec:/data/mvtec/bottle"])
    assert {r.data for r in mvtec} == {"mvtec:/data/mvtec/bottle"}


def _cavga_records(values: dict[tuple[str, str], list[float]]) -> list[dict]:
    """(data, variant) -> per-seed IoU (or image AUROC on digits) -> log records as `xgen reproduce` writes them."""
    settings = {"epochs": None, "normalize": "per-image", "options": {}}
    out = []
    for (data, variant), xs in values.items():
        for seed, x in enumerate(xs):
            masks = data.startswith("textures")
            metrics = {"iou": x, "best-iou": x + 0.01, "pixel-auroc": 0.5 + x, "image-auroc": 0.6} if masks else {}
            metrics = metrics or {"image-auroc": x}
            controls = {
                "fixed-map pixel-auroc": 0.45,
                "mean-mask pixel-auroc": 0.737,
                "mean-mask best-iou": 0.065,
                "flag-all iou": 0.029,
            }
            run = xgen.Run("cavga-ablation", data, variant, seed, settings)
            out.append(record(run, {"metrics": metrics, "controls": controls if masks else {}}))
    return out


def test_cavga_ablation_findings_hold_fail_and_stay_within_noise(registry):
    records = _cavga_records(
        {
            ("textures:brick", "flat"): [0.030, 0.032, 0.031],
            ("textures:brick", "flat+ae"): [0.060, 0.062, 0.061],
            ("textures:brick", "conv"): [0.050, 0.052, 0.051],
            ("textures:brick", "conv+ae"): [0.020, 0.022, 0.021],
            ("digits:normal=1,size=32", "flat"): [0.90, 0.95, 0.85],
            ("digits:normal=1,size=32", "flat+ae"): [0.91, 0.86, 0.96],
        }
    )
    found = claim("cavga-l-ae-improves-iou").findings(records)
    by = {f.subject: f for f in found}
    flat = by["textures:brick, flat z: c2 vs c1 (iou)"]
    assert flat.verdict == HOLDS and flat.paper_value == "0.34 vs 0.24"
    assert flat.difference == pytest.approx(0.030)
    assert flat.spread == pytest.approx(statistics.stdev([0.030, 0.032, 0.031]))
    assert "pixel-auroc +0.030" in flat.reason and "flag-all" not in flat.reason and "IoU 0.029" in flat.reason
    assert by["textures:brick, conv z: c4 vs c3 (iou)"].verdict == FAILS
    digits = by["digits:normal=1,size=32, flat z: c2 vs c1 (image-auroc; no masks)"]
    assert digits.verdict == UNTESTABLE and digits.difference == pytest.approx(0.01)
    assert len(found) == 3, "the conv pair on digits has no records and is left out"


def test_pwae_grid_is_the_documented_one_and_shared(registry):
    default = grid(PWAE, "default")
    union = {r.key: r for runs in default.values() for r in runs}
    assert len(union) == 13 * 5, "3 textures + 10 digit classes, 5 variants, seed 0"
    assert {r.seed for r in union.values()} == {0}
    assert {r.key for r in default["pwae-tile-rule-helps"]} <= {r.key for r in default["pwae-beats-vae"]}
    assert {r.variant for r in default["pwae-hsic-raises-feature-diversity"]} == {"pwae", "no-hsic"}
    assert all(r.settings == {"epochs": None, "normalize": "none", "options": {}} for r in union.values())
    quick = {r.key: r for runs in grid(PWAE, "quick").values() for r in runs}
    assert len(quick) == 5 * 2 and len({r.data for r in quick.values()}) == 1
    paper = [r for runs in grid(PWAE, "paper").values() for r in runs]
    assert {r.seed for r in paper} == {0, 1, 2} and all("size=128" in r.data for r in paper)


def _pwae_record(data: str, variant: str, seed: int, tiles: float, image: float, rank: float = 10.0) -> dict:
    architecture = "conv-vae" if variant == "conv-vae" else "pwae"
    metrics = (
        {"-": {"image-auroc": tiles}}
        if architecture == "conv-vae"
        else {
            "image+tiles": {"image-auroc": tiles, "pixel-auroc": tiles},
            "image": {"image-auroc": image, "pixel-auroc": tiles},
        }
    )
    run = xgen.Run("pwae-results", data, variant, seed, {"epochs": None, "normalize": "none", "options": {}})
    result = {
        "architecture": architecture,
        "metrics": metrics,
        "diversity": {"effective-rank": rank, "mean-abs-correlation": 1.0 / rank},
    }
    return record(run, result)


def test_pwae_findings_per_texture_over_seeds_and_over_digit_classes(registry):
    rng = np.random.default_rng(0)
    records = []
    for seed in (0, 1, 2):
        records.append(_pwae_record("textures:brick", "pwae", seed, 0.70 + 0.01 * seed, 0.60 + 0.01 * seed))
        records.append(_pwae_record("textures:grass", "pwae", seed, 0.50 + 0.1 * seed, 0.52 + 0.1 * seed))
    classes = rng.uniform(0.7, 0.9, size=10)
    for d, base in enumerate(classes):
        records.append(_pwae_record(f"digits:normal={d}", "pwae", 0, base, base + 0.2))
    by = {f.subject: f for f in claim("pwae-tile-rule-helps").findings(records)}
    assert by["textures:brick, image-auroc"].verdict == HOLDS
    assert by["textures:grass, image-auroc"].verdict == UNTESTABLE, "0.02 against a spread of 0.1"
    digits = by["digits, 10 normal classes (spread over classes), image-auroc"]
    assert digits.verdict == FAILS and digits.difference == pytest.approx(-0.2)
    assert digits.spread == pytest.approx(np.std(classes, ddof=1))
    assert "better in 0 of 10 paired runs" in digits.reason


def test_pwae_diversity_claim_reads_lower_correlation_as_better(registry):
    records = []
    for seed in (0, 1):
        records.append(_pwae_record("textures:brick", "pwae", seed, 0.7, 0.7, rank=30.0 + seed))
        records.append(_pwae_record("textures:brick", "no-hsic", seed, 0.7, 0.7, rank=10.0 + seed))
    found = claim("pwae-hsic-raises-feature-diversity").findings(records)
    assert [f.verdict for f in found] == [HOLDS, HOLDS], "higher rank and lower correlation both support the claim"
    assert found[1].subject.endswith("mean-abs-correlation")


def test_pwae_diversity_matches_numpy():
    from xgen_plugins.pwae.claims import diversity

    generator = torch.Generator().manual_seed(0)
    codes = torch.randn(200, 6, generator=generator, dtype=torch.float64) * torch.tensor([4.0, 2, 1, 1, 0.5, 0.1])
    centred = codes.numpy() - codes.numpy().mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    p = s / s.sum()
    correlation = np.abs(np.corrcoef(centred.T))
    expected_corr = correlation[~np.eye(6, dtype=bool)].mean()
    got = diversity(codes)
    assert got["effective-rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert got["mean-abs-correlation"] == pytest.approx(expected_corr)
    line = torch.arange(50.0)[:, None] * torch.tensor([[1.0, 2.0, -1.0]])
    assert diversity(line)["effective-rank"] == pytest.approx(1.0, abs=1e-3)


def test_rbm_grid_is_the_documented_one(registry):
    default = grid(RBM, "default")
    textures = default["vae-gradcam-beats-rbm-gumbel"]
    assert len(textures) == 3 * 3 * 2 and len({r.key for r in textures}) == 18
    assert {r.data for r in textures} == {
        f"textures:{c},size=32,train_n=1000,test_n=200" for c in ("brick", "grass", "gravel")
    }
    rbm = next(r for r in textures if r.variant == "stacked-rbm")
    assert rbm.settings["options"] == {"epochs_per_layer": 20, "units": "binary"}
    (gallery_run,) = default["rbm-gumbel-mnist-figure-12"]
    assert gallery_run.data == "digits:normal=1,size=28" and gallery_run.seed == 0
    quick = grid(RBM, "quick")["vae-gradcam-beats-rbm-gumbel"]
    assert len({r.data for r in quick}) == 1 and {r.seed for r in quick} == {0, 1}
    paper = grid(RBM, "paper")
    assert all("size=64" in r.data for r in paper["vae-gradcam-beats-rbm-gumbel"])
    assert paper["rbm-gumbel-mnist-figure-12"][0].data == "mnist:normal=1"


def _rbm_records(gradcam: list[float], layer: dict[int, list[float]]) -> list[dict]:
    data = "textures:brick,size=32,train_n=1000,test_n=200"
    out = []
    for seed, value in enumerate(gradcam):
        maps = {
            "conv-vae: vae-gradcam": {"pixel-auroc": value, "best-iou": 0.03},
            "fixed map: the mean vae-gradcam map, the same for every image": {"pixel-auroc": 0.5, "best-iou": 0.03},
        }
        out.append(record(xgen.Run("rbm-textures", data, "conv-vae", seed, {}), {"maps": maps}))
        maps = {f"rbm-gumbel layer {n}": {"pixel-auroc": v[seed], "best-iou": 0.03} for n, v in layer.items()}
        maps["rbm-gumbel layer 1, view=grid"] = {"pixel-auroc": 0.0, "best-iou": 0.0}
        out.append(record(xgen.Run("rbm-textures", data, "stacked-rbm", seed, {}), {"maps": maps}))
    return out


def test_rbm_findings_compare_vae_gradcam_with_each_layer(registry):
    records = _rbm_records([0.60, 0.62, 0.61], {1: [0.50, 0.51, 0.49], 2: [0.70, 0.71, 0.72], 3: [0.5, 0.7, 0.6]})
    found = claim("vae-gradcam-beats-rbm-gumbel").findings(records)
    assert [(f.subject, f.verdict) for f in found] == [
        ("textures:brick, layer 1 (pixel-auroc)", HOLDS),
        ("textures:brick, layer 2 (pixel-auroc)", FAILS),
        ("textures:brick, layer 3 (pixel-auroc)", UNTESTABLE),
    ]
    assert "vae-gradcam as one fixed map for every image: pixel-auroc 0.500" in found[0].reason


def test_rbm_similarity_is_the_mean_off_diagonal_correlation():
    from xgen_plugins.rbm.claims import cross_input_similarity

    maps = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(1))
    correlation = np.corrcoef(maps.flatten(1).numpy())
    assert cross_input_similarity(maps) == pytest.approx(correlation[~np.eye(5, dtype=bool)].mean())
    assert cross_input_similarity(maps[:1].expand(3, -1, -1) * torch.tensor([1.0, 2.0, 3.0])[:, None, None]) == (
        pytest.approx(1.0)
    )


def test_rbm_texture_claim_runs_end_to_end_on_a_tiny_grid(registry, tmp_path, monkeypatch, one_thread):
    from xgen_plugins.rbm import claims as rbm_claims

    settings = {
        "stacked-rbm": {
            "options": {"epochs_per_layer": 1, "hidden": [16, 9]},
            "epochs": None,
            "batch_size": None,
            **rbm_claims.EVERY_LAYER,
        },
        "conv-vae": {"options": {}, "epochs": 1, "batch_size": None},
    }
    monkeypatch.setitem(
        rbm_claims.TEXTURE_GRID, "quick", (["textures:brick,size=16,train_n=32,test_n=8"], [0, 1], settings)
    )
    result = xgen.reproduce(["vae-gradcam-beats-rbm-gumbel"], scale="quick", out=tmp_path)
    assert result.executed == 4 and not result.refused
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    rbm = next(r["result"] for r in records if r["run"]["variant"] == "stacked-rbm")
    for layer in (1, 2):
        assert f"fixed map: the mean rbm-gumbel layer {layer} map, the same for every image" in rbm["maps"]
    assert all(0.0 <= m["pixel-auroc"] <= 1.0 for m in rbm["maps"].values())
    masks = xgen.dataset("textures:brick,size=16,train_n=32,test_n=8").test().masks
    assert rbm["anomalous_pixel_fraction"] == pytest.approx(float(masks.mean()))
    assert [f.subject for f in result.findings] == [
        "textures:brick, layer 1 (pixel-auroc)",
        "textures:brick, layer 2 (pixel-auroc)",
    ]
    for layer, finding in enumerate(result.findings, start=1):
        assert f"rbm-gumbel layer {layer} as one fixed map for every image: pixel-auroc" in finding.reason
    again = xgen.reproduce(["vae-gradcam-beats-rbm-gumbel"], scale="quick", out=tmp_path)
    assert (again.executed, again.reused) == (0, 4)
