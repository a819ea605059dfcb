"""The report and side checks of Paul et al.'s claims on xgen's offline data (issue 13, "What must be shown"):
Tables 1-2 (FID, precision and recall), Table 3 (MIG and the maximum mutual information through Q, eq. 19-20) on
dSprites, and Tables 4-5 (one-class detection from Q, conv and dense embeddings with a one-class SVM and LOF) on
dSprites, MNIST and faces, with their controls.

The runs are made by `xgen reproduce` (the claims of `xgen_plugins/infostylegan/claims.py`; `measures.py` beside it
holds the run code this script's former `run` subcommand had; the runs that subcommand logged in
benchmarks/runs/infostylegan.jsonl were taken over into the reproduce log as the same runs):

    xgen reproduce --paper 004 --threads 1 --out benchmarks/runs/reproduce        # the grid (resumable; start it
                                                                                  # again for a second worker)
    python benchmarks/infostylegan_results.py report --out docs/results/infostylegan-log.md
    python benchmarks/infostylegan_results.py checks                     # the side checks the results page cites

`report` writes the tables from the log alone (`--log`: the reproduce log, or the former script log) and the figures
from the checkpoints the runs kept (a reproduce run's `model.pt`, else benchmarks/runs/infostylegan/).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from result_runs import load_runs, write_report

import xgen
from xgen_plugins.embeddings import detectors, whitening
from xgen_plugins.infostylegan.measures import (
    DATA,
    DETECT_DATA,
    DETECTORS,
    EXPERIMENT,
    SETTINGS,
    VARIANTS,
    prepared,
    q_information,
    to_size,
)

RUNS = Path(__file__).parent / "runs"
KEPT = RUNS / "infostylegan"

# ---- the report -----------------------------------------------------------------------------------------------------

VERDICT_RULE = (
    "a difference of means counts when it exceeds the sum of the two seed standard deviations; otherwise the two are "
    "level at this scale (the spread over seeds swamps the difference); with one seed on a side it is not testable"
)


def mean_std(values: list[float], pattern: str = "{:.3f}") -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return pattern.format(values[0])
    return f"{pattern.format(statistics.mean(values))} ± {pattern.format(statistics.stdev(values))}"


def verdict(a: list[float], b: list[float], higher_is_better: bool) -> str:
    """Whether a beats b under VERDICT_RULE."""
    if len(a) < 2 or len(b) < 2:
        return f"not testable ({len(a)} and {len(b)} seeds)"
    diff = statistics.mean(a) - statistics.mean(b)
    spread = statistics.stdev(a) + statistics.stdev(b)
    if abs(diff) <= spread:
        return f"level (difference {diff:+.3f}, spread {spread:.3f})"
    better = (diff > 0) == higher_is_better
    return f"{'better' if better else 'worse'} (difference {diff:+.3f}, spread {spread:.3f})"


def ci(pair: list[float], pattern: str = "{:.3f}") -> str:
    return f"[{pattern.format(pair[0])}, {pattern.format(pair[1])}]"


ROW_NAMES = {
    "trained-q-ocsvm": ("InfoStyleGAN → Q → OCSVM", "IQO"),
    "trained-q-lof": ("InfoStyleGAN → Q → LOF", "IQL"),
    "trained-conv-ocsvm": ("InfoStyleGAN → Conv → OCSVM", "ICO"),
    "trained-conv-lof": ("InfoStyleGAN → Conv → LOF", "ICL"),
    "trained-convk-ocsvm": ("InfoStyleGAN → Conv, fewer whitened components → OCSVM (not the paper's)", ""),
    "trained-convk-lof": ("InfoStyleGAN → Conv, fewer whitened components → LOF (not the paper's)", ""),
    "trained-dense-ocsvm": ("InfoStyleGAN → Dense → OCSVM", "IDO"),
    "trained-dense-lof": ("InfoStyleGAN → Dense → LOF", "IDL"),
    "trained-disc": ("InfoStyleGAN → 1 - D(x), D(x) < 0.5", "D"),
    "untrained-q-ocsvm": ("control: untrained network → Q → OCSVM", ""),
    "untrained-q-lof": ("control: untrained network → Q → LOF", ""),
    "untrained-conv-ocsvm": ("control: untrained network → Conv → OCSVM", ""),
    "untrained-conv-lof": ("control: untrained network → Conv → LOF", ""),
    "untrained-dense-ocsvm": ("control: untrained network → Dense → OCSVM", ""),
    "untrained-dense-lof": ("control: untrained network → Dense → LOF", ""),
    "pixels-ocsvm": ("control: raw pixels → OCSVM", ""),
    "pixels-lof": ("control: raw pixels → LOF", ""),
}


def detection_table(record: dict[str, Any]) -> list[str]:
    d = record["detection"]
    lines = [
        f"{DATA[record['data']][1]}; detectors fitted on {d['fit_n']} training images, tested on {d['test_n']} "
        f"({d['test_anomalous']} anomalous); training {record['train_s']:.0f} s"
        + (f"; fewer components: {d['conv_components']}." if "conv_components" in d else "."),
        "",
        "| method | abbr. | ROC AUC [95% CI] | accuracy [95% CI] | F1 | flagged |",
        "|---|---|---|---|---|---|",
    ]
    for key, (label, abbr) in ROW_NAMES.items():
        r = d["rows"].get(key)
        if r is None:
            continue
        lines.append(
            f"| {label} | {abbr} | {r['auroc']:.3f} {ci(r['auroc_ci'])} | {100 * r['accuracy']:.1f} % "
            f"{ci([100 * v for v in r['accuracy_ci']], '{:.1f}')} | {r['f1']:.3f} | {100 * r['flagged']:.0f} % |"
        )
    lines += ["", "| AUROC difference (paired bootstrap) | OCSVM | LOF |", "|---|---|---|"]
    for a, b in (("dense", "q"), ("dense", "conv"), ("conv", "q"), ("dense", "convk")):
        if f"{a}-{b}-ocsvm" not in d["auroc_differences"]:
            continue
        cells_ = []
        for det in DETECTORS:
            diff, low, high = d["auroc_differences"][f"{a}-{b}-{det}"]
            sign = "higher" if low > 0 else "lower" if high < 0 else "not distinguishable"
            cells_.append(f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]: {sign}")
        lines.append(f"| {a} − {b} | " + " | ".join(cells_) + " |")
    return lines


def detection_summary(by: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """ROC AUC of every row over the training seeds (mean ± sample std, n seeds), one column per data set."""
    runs = {data: sorted(by.get((data, "infostylegan"), []), key=lambda r: r["seed"]) for data in DETECT_DATA}
    lines = [
        "### Over the seeds: ROC AUC, mean ± sample std (seeds)",
        "",
        "| method | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for key, (label, _) in ROW_NAMES.items():
        cells_ = []
        for records in runs.values():
            values = [r["detection"]["rows"][key]["auroc"] for r in records if key in r["detection"]["rows"]]
            cells_.append(f"{mean_std(values)} ({len(values)})" if values else "–")
        lines.append(f"| {label} | " + " | ".join(cells_) + " |")
    return lines


def checkpoint(folders: dict[str, Path], variant: str, steps: int) -> Path:
    """The seed-0 dSprites checkpoint of `variant`: the reproduce run's `model.pt`, else the former script's."""
    kept = folders.get(variant)
    return kept if kept is not None and kept.exists() else KEPT / f"dsprites-{variant}-s0-{steps}.pt"


def figures(folders: dict[str, Path], steps: int, out: Path) -> list[str]:
    """A traversal per variant (seed 0, rows = codes, columns = values over the code's range, three prior seeds,
    with each code's q-gradcam map of the seed image), and q-gradcam maps of real dSprites images for InfoStyleGAN."""
    from xgen.visualize import captioned, grid, overlays, save_png

    written = []
    for variant in VARIANTS:
        path = checkpoint(folders, variant, steps)
        if not path.exists():
            continue
        model = xgen.load(path)
        maps = VARIANTS[variant][1].get("beta", 1.0) > 0
        traversal = xgen.traverse(
            model, n=3, steps=7, span=1.0, relative=False, seed=0, maps=maps, plugin="q-gradcam" if maps else None
        )
        target = out / f"infostylegan-traversal-{variant}.png"
        traversal.save(target)
        written.append(target.name)
    path = checkpoint(folders, "infostylegan", steps)
    if path.exists():
        model = xgen.load(path)
        data = prepared("dsprites")
        factors = data.base.sample_factors(6, torch.Generator().manual_seed(7))
        images = to_size(data.base.render_factors(factors), data.size)
        exp = xgen.explain(model, images, plugin="q-gradcam", per_dim=True)
        per_dim, names = exp.details["per_dim"], exp.details["per_dim_names"]
        outputs = exp.details["outputs"]
        tiles = []
        for i in range(len(images)):
            shown_ = overlays(images[i : i + 1].repeat(len(names), 1, 1, 1).numpy(), per_dim[i].numpy())
            for k, name in enumerate(names):
                tiles.append(captioned(shown_[k], f"{name} {float(outputs[i, k]):+.2f}", min_size=64))
        target = out / "infostylegan-q-gradcam.png"
        save_png(grid(tiles, columns=len(names)), target)
        written.append(target.name)
    return written


def records(log: Path, settings: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """The runs of paper 004's claims at `settings` in `log` as flat records (an `xgen reproduce` record's result
    with its machine, or a former script record as is; one per run key, the last), and the seed-0 dSprites
    checkpoints the reproduce runs kept, by variant."""
    flat: dict[str, dict[str, Any]] = {}
    folders: dict[str, Path] = {}
    for r in load_runs(log):
        if "result" in r:
            if r["run"]["experiment"] != EXPERIMENT or r["run"]["settings"] != settings:
                continue
            flat[r["key"]] = {**r["result"], "machine": r["machine"]}
            if r["run"]["data"] == "dsprites" and r["run"]["seed"] == 0:
                folders[r["run"]["variant"]] = log.parent / r["folder"] / "model.pt"
        elif all(r.get(k) == v for k, v in settings.items()):
            flat[str([r["data"], r["variant"], r["seed"]])] = r
    return list(flat.values()), folders


def report(args: argparse.Namespace) -> None:
    settings = SETTINGS[args.scale]
    runs, folders = records(args.log, settings)
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["data"], r["variant"]), []).append(r)
    out = args.out.parent
    figs = figures(folders, settings["steps"], out) if not args.no_figures else []
    machines = sorted({r["machine"] for r in runs})
    size = settings["size"]
    lines = [
        "# InfoStyleGAN and its variants on xgen's offline data: the run log (generated)",
        "",
        f"Made by `python benchmarks/infostylegan_results.py report --out {args.out}` from {len(runs)} records in "
        f"`{args.log.name}` ({settings['steps']} steps of batch {settings['batch']} at {size}x{size} per training "
        f"run). Machines: {'; '.join(machines) or '–'}.",
        "",
        f"Verdict rule for Tables 1-3: {VERDICT_RULE}.",
        "",
    ]
    control = next(iter(by.get(("dsprites", "controls"), [])), None)
    lines += [
        "## Tables 1-2: image quality on dSprites (FID, precision, recall; conv-vae features)",
        "",
        "| variant | seeds | FID | precision k=3 | recall k=3 | precision k=10 | recall k=10 | L_info at the end "
        "(nats) | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if control:
        c = control["controls"]
        for label, q in [("control: real vs real", c["real_vs_real"])] + [
            (f"control: untrained {VARIANTS[v][0]}", c[f"untrained_{v}"]) for v in ("infogan", "infostylegan")
        ]:
            lines.append(
                f"| {label} | – | {q['fid']:.4g} | {q['precision_k3']:.3f} | {q['recall_k3']:.3f} | "
                f"{q['precision_k10']:.3f} | {q['recall_k10']:.3f} | – | – |"
            )
    for variant, (label, _) in VARIANTS.items():
        rs = by.get(("dsprites", variant), [])
        if not rs:
            continue
        q = [r["quality"] for r in rs]
        lines.append(
            f"| {label} | {len(rs)} | "
            + " | ".join(
                mean_std([x[key] for x in q], "{:.4g}" if key == "fid" else "{:.3f}")
                for key in ("fid", "precision_k3", "recall_k3", "precision_k10", "recall_k10")
            )
            + f" | {mean_std([r['history'][-1].get('info', float('nan')) for r in rs])} | "
            f"{mean_std([r['train_s'] for r in rs], '{:.0f}')} |"
        )
    lines += [
        "",
        "## Table 3: disentanglement through Q on dSprites (eq. 19-20)",
        "",
        "| variant | seeds | MIG | max_k,i I(V_k; C_i) (nats) | MIG, eq. 19 literal | max MI, literal | mig-binned "
        "of Q's point codes |",
        "|---|---|---|---|---|---|---|",
    ]
    if control:
        for v in ("infogan", "infostylegan", "infostylegan-discrete"):
            d = control["controls"][f"untrained_{v}"]
            lines.append(
                f"| control: untrained {VARIANTS[v][0]} | – | {d['mig']:.4f} | {d['max_mi']:.4f} | "
                f"{d['mig_literal']:.4f} | {d['max_mi_literal']:.4f} | {mean_std([d['mig_binned']], '{:.4f}')} |"
            )
    for variant, (label, _) in VARIANTS.items():
        rs = by.get(("dsprites", variant), [])
        if not rs:
            continue
        d = [r["disentanglement"] for r in rs]
        lines.append(
            f"| {label} | {len(rs)} | "
            + " | ".join(
                mean_std([x[key] for x in d], "{:.4f}")
                for key in ("mig", "max_mi", "mig_literal", "max_mi_literal", "mig_binned")
            )
            + " |"
        )
    lines += ["", "Mutual information I(V_k; C_i) in nats (aggregate form), seed by seed:", ""]
    for variant, (label, _) in VARIANTS.items():
        for r in sorted(by.get(("dsprites", variant), []), key=lambda r: r["seed"]):
            d = r["disentanglement"]
            lines += [
                f"{label}, seed {r['seed']}:",
                "",
                "| factor | " + " | ".join(d["codes"]) + " |",
                "|---|" + "---|" * len(d["codes"]),
            ]
            for name, row in zip(d["factors"], d["mi"], strict=True):
                lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
            lines.append("")

    def vals(variant: str, section: str, key: str) -> list[float]:
        return [r[section][key] for r in by.get(("dsprites", variant), [])]

    mig, max_mi = ("disentanglement", "mig"), ("disentanglement", "max_mi")

    lines += [
        "## Verdicts, Tables 1-3",
        "",
        "| claim | measure | verdict (first against second) |",
        "|---|---|---|",
        f"| InfoStyleGAN disentangles better than InfoGAN | MIG | "
        f"{verdict(vals('infostylegan', *mig), vals('infogan', *mig), True)} |",
        f"| InfoStyleGAN disentangles better than InfoGAN | max MI | "
        f"{verdict(vals('infostylegan', *max_mi), vals('infogan', *max_mi), True)} |",
        f"| the information term costs little FID: InfoStyleGAN against StyleGAN | FID | "
        f"{verdict(vals('infostylegan', 'quality', 'fid'), vals('stylegan', 'quality', 'fid'), False)} |",
        f"| InfoGAN against StyleGAN | FID | "
        f"{verdict(vals('infogan', 'quality', 'fid'), vals('stylegan', 'quality', 'fid'), False)} |",
        f"| InfoStyleGAN-Discrete against InfoStyleGAN | FID | "
        f"{verdict(vals('infostylegan-discrete', 'quality', 'fid'), vals('infostylegan', 'quality', 'fid'), False)} |",
        "",
        "## Tables 4-5: one-class detection from embeddings (InfoStyleGAN, seed by seed)",
        "",
        f"ROC AUC and accuracy with 95% percentile intervals from {settings['boot']} bootstrap resamples of the test "
        "images (NumPy RandomState seed 0); F1 of the anomalous class; accuracy and F1 at the detector's own threshold "
        "(OCSVM: decision function < 0; LOF: LOF > 1.5, scikit-learn's `contamination='auto'`; D: D(x) < 0.5); "
        "flagged = share of test images called anomalous. Differences: paired bootstrap over the same resamples.",
        "",
    ]
    lines += [*detection_summary(by), ""]
    for data in DETECT_DATA:
        for r in sorted(by.get((data, "infostylegan"), []), key=lambda r: r["seed"]):
            lines += [f"### {data}, seed {r['seed']}", "", *detection_table(r), ""]
    lines += ["Figures: " + ", ".join(f"`{f}`" for f in figs), ""]
    write_report(args.out, lines)


# ---- the checks the results page cites ------------------------------------------------------------------------------


def checks(args: argparse.Namespace) -> None:
    """Print the side measurements docs/results/infostylegan.md cites: eq. 19's estimator against scikit-learn and
    a known answer, the simplex geometry of whitening with fewer samples than dimensions, and InfoGAN's images in
    train and eval mode."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mutual_info_score

    from xgen_plugins.infostylegan.codes import Codes

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = 3000
    factors = torch.randint(0, 4, (n, 2), generator=g)
    codes = Codes("cat:3,bern:2,unif:1")
    q = torch.zeros(n, codes.q_dim)
    q[:, 0:3] = F.one_hot(factors[:, 0] % 3, 3) * 60.0
    q[:, 3] = ((factors[:, 1] > 1).float() * 2 - 1) * 60
    q[:, 4] = torch.randn(n, generator=g)
    q[:, 5], q[:, 6] = factors[:, 0].float() * 0.5, -12.0

    class Stub:
        module = type("Module", (), {"codes": codes})
        device = torch.device("cpu")

        def head(self, name: str) -> Any:
            return lambda x: q[x[:, 0, 0, 0].long()]

    out = q_information(Stub(), torch.arange(n).float().view(n, 1, 1, 1), factors)  # type: ignore[arg-type]
    print("eq. 19 estimator (aggregate form), I(V_k; C_i) nats, codes", out["codes"])
    print("  cat0 = f0 mod 3:", out["mi"][0][0], "sklearn:", mutual_info_score(factors[:, 0], factors[:, 0] % 3))
    print("  bern0 = f1 > 1:", out["mi"][1][1], "sklearn:", mutual_info_score(factors[:, 1], factors[:, 1] > 1))
    print("  unif0 = f0 / 2 (sd 0.0025):", out["mi"][0][3], "log 4 =", math.log(4))
    e = torch.randn(200, 500, generator=g, dtype=torch.float64) @ torch.randn(
        500, 500, generator=g, dtype=torch.float64
    )
    t = torch.randn(300, 500, generator=g, dtype=torch.float64) @ torch.randn(
        500, 500, generator=g, dtype=torch.float64
    )
    state = whitening.fit(e)
    w, wt = whitening.apply(e, state), whitening.apply(t, state)
    d = torch.cdist(w, w)[~torch.eye(200, dtype=torch.bool)]
    print(f"whitening n=200 < d=500: training pairwise distances {float(d.min()):.4f} .. {float(d.max()):.4f}, ")
    print(f"  sqrt(2(n-1)) = {math.sqrt(2 * 199):.4f}")
    svm = -detectors.ocsvm_decision(wt, detectors.ocsvm_fit(w, "rbf", 0.5, "scale", 3, 0.0))
    print(f"  Spearman(OCSVM score, whitened norm) = {spearmanr(svm, wt.norm(dim=1))[0]:.5f}")
    path = KEPT / f"dsprites-infogan-s0-{SETTINGS['default']['steps']}.pt"
    if path.exists():
        model = xgen.load(path)
        z = model.sample_prior(64, torch.Generator().manual_seed(0))
        with torch.no_grad():
            evaluated = model.decode(z)
            model.module.train()
            trained = model.decode(z)
            model.module.eval()
        real = prepared("dsprites").sample_train(64, torch.Generator().manual_seed(0))
        print(
            f"InfoGAN seed 0 mean pixel: eval mode {float(evaluated.mean()):.3f}, "
            f"train mode {float(trained.mean()):.3f}; real dSprites {float(real.mean()):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("report", "checks"):
        p = sub.add_parser(name)
        p.add_argument("--threads", type=int, default=1)
    p = sub.choices["report"]
    p.add_argument("--log", type=Path, default=RUNS / "reproduce" / "runs.jsonl", help="reproduce or former script log")
    p.add_argument("--scale", choices=sorted(SETTINGS), default="default", help="the runs of this scale's settings")
    p.add_argument("--out", type=Path, default=Path("docs/results/infostylegan-log.md"))
    p.add_argument("--no-figures", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "checks":
        checks(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
