import xgen


class AbsError(xgen.Explainer):
    name = "abs-error"
    description = "Mean absolute reconstruction error per pixel."
    requires = {"decode"}

    def explain(self, model: xgen.Model, x):  # x: (N, C, H, W) float32 in [0, 1]
        err = (model.reconstruct(x) - x).abs().mean(dim=1)
        return xgen.Explanation(anomaly_map=err, score=err.flatten(1).mean(dim=1))


@xgen.hookimpl
def xgen_register_explainers(register):
    register(AbsError)
