"""Train a small conv-vae on the digit 1 and explain a few other digits from Python (about a minute on a CPU).

python examples/explain_digits.py
"""

import torch

import xgen

model = xgen.train("conv-vae", "digits:normal=1", seed=0)
test = xgen.dataset("digits:normal=1").test()
sevens = test.images[test.classes == 7][:4]

exp = xgen.explain(model, sevens, plugin="vae-gradcam", per_dim=True)
print("maps", tuple(exp.anomaly_map.shape), "per latent dimension", tuple(exp.details["per_dim"].shape))

peak = exp.anomaly_map.flatten(1).argmax(dim=1)
print("peak (row, col) of each map:", [(int(p) // 28, int(p) % 28) for p in peak])

xgen.save(model, "conv-vae-digit1.pt")
again = xgen.load("conv-vae-digit1.pt")
assert torch.equal(xgen.explain(again, sevens).anomaly_map, exp.anomaly_map)
print("saved and reloaded conv-vae-digit1.pt; the maps are identical")
