"""The plugin core: in-process registration, entry-point loading (faked importlib.metadata), validation, switches."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import pkgutil
import re
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import xgen
import xgen.plugins
from xgen import hookspecs
from xgen.plugins import KINDS, new_registry, use_registry
from xgen.testing import TinyVAE

REPO = Path(__file__).resolve().parents[1]

# The third-party plugin of DESIGN.md ("This is the whole of one, and it must keep working"), copied verbatim.
ABS_ERROR_SOURCE = """\
import xgen

class AbsError(xgen.Explainer):
    name = "abs-error"
    description = "Mean absolute reconstruction error per pixel."
    requires = {"decode"}

    def explain(self, model: xgen.Model, x):             # x: (N, C, H, W) float32 in [0, 1]
        err = (model.reconstruct(x) - x).abs().mean(dim=1)
        return xgen.Explanation(anomaly_map=err, score=err.flatten(1).mean(dim=1))

@xgen.hookimpl
def xgen_register_explainers(register):
    register(AbsError)
"""


# -- helpers ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeDist:
    name: str
    version: str = "1.0"


class FakeEntryPoint:
    """What xgen uses of an importlib.metadata.EntryPoint: name, value, group, load() and dist.name/.version."""

    def __init__(self, name: str, module: str, dist: str, version: str = "1.0") -> None:
        self.name = name
        self.value = module
        self.group = "xgen"
        self.dist = FakeDist(dist, version)

    def load(self) -> types.ModuleType:
        return importlib.import_module(self.value)


@pytest.fixture
def plugin_modules(tmp_path, monkeypatch):
    """write(module_name, source): a real importable module in tmp_path; removed from sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(module: str, source: str) -> str:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        written.append(module)
        return module

    yield write
    for module in written:
        sys.modules.pop(module, None)


def builtin_entry_points() -> list:
    return [ep for ep in importlib.metadata.entry_points(group="xgen") if ep.dist.name == "xgen"]


def explainer_source(*names: str) -> str:
    """A plugin module registering one trivial explainer per name."""
    return f"""
        import torch
        import xgen

        class Thing(xgen.Explainer):
            description = "A constant map."

            def explain(self, model, x):
                return xgen.Explanation(anomaly_map=torch.zeros(x.shape[0], x.shape[2], x.shape[3]))

        @xgen.hookimpl
        def xgen_register_explainers(register):
            for name in {list(names)!r}:
                register(type(name.title().replace("-", ""), (Thing,), {{"name": name}}))
    """


def make_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), module.__dict__)
    return module


# -- in-process registration --------------------------------------------------------------------------------------


class ConstantExplainer(xgen.Explainer):
    name = "constant-map"
    description = "A map of a constant value."
    value: float = 0.25

    def explain(self, model, x):
        return xgen.Explanation(anomaly_map=torch.full((x.shape[0], x.shape[2], x.shape[3]), self.value))


class CountMetric(xgen.Metric):
    name = "map-count"
    description = "Number of maps."
    requires = frozenset({"maps"})

    def compute(self, *, maps=None, masks=None, scores=None, labels=None):
        return float(maps.shape[0])


class InProcessPlugin:
    """One plugin object registering two things through two hooks."""

    @xgen.hookimpl
    def xgen_register_explainers(self, register):
        register(ConstantExplainer)

    @xgen.hookimpl
    def xgen_register_metrics(self, register):
        register(CountMetric)


def test_in_process_plugin_registers_through_its_hooks_and_unregisters_in_finally(registry):
    assert "constant-map" not in registry.names("explainer")
    name = registry.add_plugin(InProcessPlugin(), "in-process")
    try:
        assert name == "in-process"
        assert registry.get("explainer", "constant-map") is ConstantExplainer
        assert registry.get("metric", "map-count") is CountMetric
        mine = {(info.kind, info.name): info for info in registry.list() if info.plugin == "in-process"}
        assert set(mine) == {("explainer", "constant-map"), ("metric", "map-count")}
        info = mine[("explainer", "constant-map")]
        assert (info.package, info.builtin, info.description) == (None, False, "A map of a constant value.")
        exp = xgen.explain(xgen.wrap(TinyVAE()), torch.rand(2, 1, 16, 16), plugin="constant-map", value="0.5")
        assert torch.equal(exp.anomaly_map, torch.full((2, 16, 16), 0.5))
    finally:
        registry.remove_plugin(name)
    assert "constant-map" not in registry.names("explainer")
    with pytest.raises(xgen.PluginError, match="unknown explainer 'constant-map'"):
        registry.get("explainer", "constant-map")


def test_plugin_context_manager_unregisters_even_when_the_block_raises(registry):
    with pytest.raises(RuntimeError, match="boom"), xgen.plugins.plugin(InProcessPlugin(), "ctx"):
        assert xgen.plugins.lookup("metric", "map-count") is CountMetric
        raise RuntimeError("boom")
    assert registry.pm.get_plugin("ctx") is None
    assert "map-count" not in registry.names("metric")


def test_registering_the_same_plugin_name_twice_is_refused(registry):
    with xgen.plugins.plugin(InProcessPlugin(), "twice"):
        with pytest.raises(xgen.PluginError, match="'twice'"):
            registry.add_plugin(InProcessPlugin(), "twice")
        assert registry.get("explainer", "constant-map") is ConstantExplainer


# -- the DESIGN.md third-party plugin -----------------------------------------------------------------------------


def check_abs_error(model: xgen.Model, x: torch.Tensor) -> None:
    exp = xgen.explain(model, x, plugin="abs-error")
    with torch.no_grad():
        expected = (model.reconstruct(x) - x).abs().mean(1)
    assert exp.anomaly_map.shape == (x.shape[0], x.shape[2], x.shape[3])
    assert exp.anomaly_map.dtype == torch.float32
    torch.testing.assert_close(exp.anomaly_map, expected)
    torch.testing.assert_close(exp.score, expected.flatten(1).mean(1))
    assert exp.score.shape == (x.shape[0],)
    assert exp.anomaly_map.std() > 0  # not a degenerate map


def test_design_abs_error_plugin_verbatim_runs_end_to_end_in_process(registry):
    module = make_module("xgen_abs_error", ABS_ERROR_SOURCE)
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with xgen.plugins.plugin(module, "abs_error"):
        check_abs_error(xgen.wrap(TinyVAE()), x)
        assert [i.name for i in xgen.list_plugins() if i.plugin == "abs_error"] == ["abs-error"]


def test_design_abs_error_plugin_verbatim_loads_as_an_installed_entry_point(plugin_modules):
    plugin_modules("xgen_abs_error", ABS_ERROR_SOURCE)
    ep = FakeEntryPoint("abs_error", "xgen_abs_error", dist="xgen-abs-error", version="0.3")
    fresh = new_registry([*builtin_entry_points(), ep])
    assert fresh.failures == []
    (info,) = [i for i in fresh.list() if i.name == "abs-error"]
    assert (info.kind, info.plugin, info.package, info.version, info.builtin) == (
        "explainer",
        "abs_error",
        "xgen-abs-error",
        "0.3",
        False,
    )
    with use_registry(fresh):
        check_abs_error(xgen.wrap(TinyVAE(seed=1)), torch.rand(2, 1, 16, 16))


def test_abs_error_copy_matches_design_md():
    design = REPO.parent / "shared" / "DESIGN.md"
    if not design.exists():
        pytest.skip("shared/DESIGN.md is not beside this checkout")
    text = design.read_text(encoding="utf-8")
    block = text.split("# xgen_abs_error.py\n", 1)[1].split("\nOptions reach", 1)[0]
    assert textwrap.dedent(block).strip() == ABS_ERROR_SOURCE.strip()


# -- entry points ---------------------------------------------------------------------------------------------------


def test_a_plugin_whose_import_raises_is_recorded_and_the_others_still_work(plugin_modules):
    plugin_modules("xgen_broken_plugin", "import xgen\nraise ImportError('No module named missing_dependency')\n")
    plugin_modules("xgen_good_plugin", explainer_source("good-thing"))
    eps = [
        *builtin_entry_points(),
        FakeEntryPoint("broken", "xgen_broken_plugin", dist="xgen-broken", version="2.1"),
        FakeEntryPoint("good", "xgen_good_plugin", dist="xgen-good"),
    ]
    with pytest.warns(UserWarning, match="xgen plugin 'broken' failed to load"):
        fresh = new_registry(eps)
    (failure,) = fresh.failures
    assert (failure.name, failure.kind, failure.package, failure.version, failure.builtin) == (
        "broken",
        "failed",
        "xgen-broken",
        "2.1",
        False,
    )
    assert failure.error == "ImportError: No module named missing_dependency"
    assert fresh.list()[-1] == failure  # `xgen plugins` shows it after the registered things
    assert fresh.get("explainer", "good-thing").name == "good-thing"
    assert fresh.get("explainer", "vae-gradcam").name == "vae-gradcam"
    assert fresh.get("architecture", "conv-vae").name == "conv-vae"
    with pytest.raises(xgen.PluginError, match=r"explainer 'broken' is unavailable: its plugin failed to load"):
        fresh.get("explainer", "broken")


def test_strict_loading_reraises_with_the_plugin_name(plugin_modules):
    plugin_modules("xgen_broken_strict", "raise ImportError('No module named missing_dependency')\n")
    ep = FakeEntryPoint("broken", "xgen_broken_strict", dist="xgen-broken")
    with pytest.raises(xgen.PluginError) as info:
        new_registry([ep], strict=True)
    assert str(info.value).startswith('Error importing plugin "broken": ImportError: No module named missing')
    assert isinstance(info.value.__cause__, ImportError)


def test_entry_points_come_from_importlib_metadata(plugin_modules, monkeypatch):
    plugin_modules("xgen_meta_plugin", explainer_source("from-metadata"))
    ep = FakeEntryPoint("meta", "xgen_meta_plugin", dist="xgen-meta", version="9.9")
    asked: list[str | None] = []
    installed = builtin_entry_points()

    def entry_points(*, group=None, **_):
        asked.append(group)
        return [*installed, ep] if group == "xgen" else []

    monkeypatch.setattr(xgen.plugins.metadata, "entry_points", entry_points)
    fresh = new_registry()
    assert asked == ["xgen"]
    assert fresh.get("explainer", "from-metadata").name == "from-metadata"
    (info,) = [i for i in fresh.list() if i.name == "from-metadata"]
    assert (info.package, info.version) == ("xgen-meta", "9.9")


MISSPELLED = """
    import xgen

    @xgen.hookimpl
    def xgen_register_explainer(register):
        raise AssertionError("a misspelled hook is never called")
"""


def test_a_misspelled_hook_is_that_plugins_load_error(plugin_modules):
    plugin_modules("xgen_misspelled", MISSPELLED)
    plugin_modules("xgen_after_misspelled", explainer_source("after-misspelled"))
    eps = [
        *builtin_entry_points(),
        FakeEntryPoint("misspelled", "xgen_misspelled", dist="a-misspelled"),
        FakeEntryPoint("after", "xgen_after_misspelled", dist="z-after"),  # sorted after the broken one
    ]
    with pytest.warns(UserWarning, match="misspelled"):
        fresh = new_registry(eps)
    (failure,) = fresh.failures
    assert failure.plugin == "misspelled"
    assert "unknown hook 'xgen_register_explainer'" in failure.error
    assert "xgen_register_explainers" in failure.error  # the hooks that do exist are listed
    assert fresh.pm.get_plugin("misspelled") is None  # rolled back
    assert fresh.get("explainer", "after-misspelled").name == "after-misspelled"
    assert fresh.get("explainer", "vae-gradcam").name == "vae-gradcam"


def test_a_misspelled_hook_registered_in_process_raises(registry):
    module = make_module("misspelled_in_process", MISSPELLED)
    with pytest.raises(xgen.PluginError, match="unknown hook 'xgen_register_explainer'"):
        registry.add_plugin(module, "misspelled-in-process")
    assert registry.pm.get_plugin("misspelled-in-process") is None
    with xgen.plugins.plugin(InProcessPlugin(), "still-fine"):  # the manager is not left broken
        assert registry.get("metric", "map-count") is CountMetric


def test_a_duplicate_name_names_both_packages_and_other_names_still_work(plugin_modules):
    plugin_modules("xgen_alpha", explainer_source("twin", "alpha-only"))
    plugin_modules("xgen_beta", explainer_source("beta-only", "twin"))
    eps = [
        *builtin_entry_points(),
        FakeEntryPoint("alpha", "xgen_alpha", dist="xgen-alpha"),
        FakeEntryPoint("beta", "xgen_beta", dist="xgen-beta"),
    ]
    with pytest.warns(UserWarning, match="twin"):
        fresh = new_registry(eps)
        failures = fresh.failures
    with pytest.raises(xgen.PluginError) as info:
        fresh.get("explainer", "twin")
    message = str(info.value)
    assert "'xgen-alpha'" in message and "'xgen-beta'" in message
    assert "XGEN_BLOCK_PLUGINS" in message
    assert [f.error for f in failures] == [message]
    assert fresh.get("explainer", "alpha-only").name == "alpha-only"
    assert fresh.get("explainer", "beta-only").name == "beta-only"
    assert fresh.get("explainer", "vae-gradcam").name == "vae-gradcam"
    with use_registry(fresh), pytest.raises(xgen.PluginError, match="xgen-beta"):
        xgen.explain(xgen.wrap(TinyVAE()), torch.rand(1, 1, 16, 16), plugin="twin")


def test_a_third_party_plugin_reusing_a_builtin_name_names_xgen_and_the_package(plugin_modules):
    plugin_modules("xgen_impostor", explainer_source("vae-gradcam"))
    eps = [*builtin_entry_points(), FakeEntryPoint("impostor", "xgen_impostor", dist="xgen-impostor")]
    with pytest.warns(UserWarning, match="vae-gradcam"):
        fresh = new_registry(eps)
        fresh.names("explainer")
    with pytest.raises(xgen.PluginError) as info:
        fresh.get("explainer", "vae-gradcam")
    assert "package 'xgen'" in str(info.value) and "package 'xgen-impostor'" in str(info.value)


def test_an_unknown_name_gets_did_you_mean(registry):
    with pytest.raises(xgen.PluginError, match=r"unknown explainer 'vae-gradcm'\. Did you mean 'vae-gradcam'\?"):
        registry.get("explainer", "vae-gradcm")
    with pytest.raises(xgen.PluginError, match="Did you mean 'vae-gradcam'"):
        xgen.explain(xgen.wrap(TinyVAE()), torch.rand(1, 1, 16, 16), plugin="vae_gradcam")
    with pytest.raises(xgen.PluginError, match="Did you mean 'conv-vae'"):
        xgen.plugins.lookup("architecture", "convvae")


def test_an_unknown_name_far_from_all_lists_the_choices(registry):
    with pytest.raises(xgen.PluginError, match=r"Available: .*vae-gradcam"):
        registry.get("explainer", "zzzzzzzz")


# -- registration validation ----------------------------------------------------------------------------------------


class NotAnExplainer:
    name = "not-an-explainer"
    description = "Not a subclass."


class NoExplain(xgen.Explainer):
    name = "no-explain"
    description = "Forgot to implement explain."


class BadName(ConstantExplainer):
    name = "Bad_Name"


class NoName(ConstantExplainer):
    name = ""


class NoDescription(ConstantExplainer):
    name = "no-description"
    description = ""


class TwoLineDescription(ConstantExplainer):
    name = "two-lines"
    description = "First line.\nSecond line."


class UnknownRequires(ConstantExplainer):
    name = "unknown-requires"
    requires = frozenset({"decode", "telepathy"})


class AScorer(xgen.Scorer):
    name = "a-scorer"
    description = "Registered through the wrong hook."

    def score(self, model, x):
        return x.flatten(1).mean(1)


class MetricWithModelRequires(CountMetric):
    name = "metric-needs-encode"
    requires = frozenset({"encode"})


INVALID = [
    pytest.param("explainer", NotAnExplainer, "not a subclass of xgen.Explainer", id="not-subclass"),
    pytest.param("explainer", AScorer, "not a subclass of xgen.Explainer", id="wrong-base"),
    pytest.param("explainer", lambda: None, "not a subclass of xgen.Explainer", id="function"),
    pytest.param("explainer", NoExplain, "does not implement explain()", id="abstract"),
    pytest.param("explainer", BadName, "name 'Bad_Name'; a name must be kebab-case", id="bad-kebab"),
    pytest.param("explainer", NoName, "name ''; a name must be kebab-case", id="no-name"),
    pytest.param("explainer", NoDescription, "'no-description' needs a one-line description", id="no-description"),
    pytest.param("explainer", TwoLineDescription, "'two-lines' needs a one-line description", id="two-lines"),
    pytest.param("explainer", UnknownRequires, "requires unknown ['telepathy']", id="unknown-requires"),
    pytest.param("metric", MetricWithModelRequires, "requires unknown ['encode']", id="metric-requires"),
]


@pytest.mark.parametrize(("kind", "bad", "message"), INVALID)
def test_an_invalid_registration_rolls_back_the_whole_plugin(registry, kind, bad, message):
    class HalfValid:
        """Registers a valid explainer and a valid metric, then (in the last hook) something invalid."""

        @xgen.hookimpl
        def xgen_register_explainers(self, register):
            register(ConstantExplainer)
            if kind == "explainer":
                register(bad)

        @xgen.hookimpl
        def xgen_register_metrics(self, register):
            register(CountMetric)
            if kind == "metric":
                register(bad)

    with pytest.warns(UserWarning, match="half-valid"), xgen.plugins.plugin(HalfValid(), "half-valid"):
        failures = registry.failures
        names = registry.names("explainer") + registry.names("metric")
    (failure,) = failures
    assert failure.plugin == "half-valid"
    assert message in failure.error
    assert "constant-map" not in names and "map-count" not in names  # rolled back, not half registered
    assert "vae-gradcam" in names  # the other plugins are untouched
    assert registry.failures == []  # unregistering the plugin clears its failure


def test_an_explainer_whose_option_types_do_not_resolve_is_refused(registry):
    module = make_module(
        "unresolvable",
        """
        from __future__ import annotations
        import xgen

        class Unresolvable(xgen.Explainer):
            name = "unresolvable"
            description = "Its option annotation names an undefined type."
            window: NoSuchType = None

            def explain(self, model, x):
                raise AssertionError

        @xgen.hookimpl
        def xgen_register_explainers(register):
            register(Unresolvable)
        """,
    )
    with pytest.warns(UserWarning), xgen.plugins.plugin(module, "unresolvable"):
        (failure,) = registry.failures
    assert "options whose types cannot be resolved" in failure.error and "NoSuchType" in failure.error


# -- environment switches -------------------------------------------------------------------------------------------


@pytest.fixture
def third_party(plugin_modules):
    plugin_modules("xgen_tp_one", explainer_source("tp-one"))
    plugin_modules("xgen_tp_two", explainer_source("tp-two"))
    return [
        *builtin_entry_points(),
        FakeEntryPoint("tp_one", "xgen_tp_one", dist="xgen-tp-one"),
        FakeEntryPoint("tp_two", "xgen_tp_two", dist="xgen-tp-two"),
    ]


def explainers(entry_points) -> tuple[list[str], bool]:
    """The third-party explainers a registry over `entry_points` loads, and whether built-in vae-gradcam is there."""
    names = new_registry(entry_points).names("explainer")
    return [n for n in names if n.startswith("tp-")], "vae-gradcam" in names


def test_block_plugins_skips_named_entry_points_builtin_or_not(third_party, monkeypatch):
    monkeypatch.setenv("XGEN_BLOCK_PLUGINS", " vae_gradcam , tp_one")
    fresh = new_registry(third_party)
    assert explainers(third_party) == (["tp-two"], False)
    assert "conv-vae" in fresh.names("architecture")
    assert fresh.failures == []
    with pytest.raises(xgen.PluginError, match="unknown explainer 'tp-one'"):
        fresh.get("explainer", "tp-one")


def test_load_plugins_is_an_allow_list_for_third_party_only(third_party, monkeypatch):
    monkeypatch.setenv("XGEN_LOAD_PLUGINS", "tp_two")
    assert explainers(third_party) == (["tp-two"], True)
    monkeypatch.setenv("XGEN_LOAD_PLUGINS", "")
    assert explainers(third_party) == ([], True)
    monkeypatch.setenv("XGEN_BLOCK_PLUGINS", "tp_two")  # blocking wins over allowing
    monkeypatch.setenv("XGEN_LOAD_PLUGINS", "tp_two,tp_one")
    assert explainers(third_party) == (["tp-one"], True)


def test_without_switches_every_entry_point_loads(third_party, monkeypatch):
    monkeypatch.delenv("XGEN_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("XGEN_LOAD_PLUGINS", raising=False)
    assert explainers(third_party) == (["tp-one", "tp-two"], True)


# -- the built-ins and the import direction -------------------------------------------------------------------------


def test_importing_xgen_loads_no_plugin():
    code = (
        "import sys, xgen, xgen.plugins\n"
        "assert xgen.plugins._default is None, 'a registry was built at import time'\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('xgen_plugins'))\n"
        "assert not loaded, loaded\n"
        "xgen.plugins.get_registry()\n"
        "assert xgen.plugins._default is not None\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_builtin_subpackage_is_an_entry_point_of_the_xgen_distribution():
    import xgen_plugins

    subpackages = {info.name for info in pkgutil.iter_modules(xgen_plugins.__path__) if info.ispkg}
    eps = {ep.name: ep.value for ep in importlib.metadata.distribution("xgen").entry_points if ep.group == "xgen"}
    assert subpackages, "xgen_plugins has no sub-packages"
    assert set(eps.values()) == {f"xgen_plugins.{name}" for name in subpackages}
    assert set(eps) == subpackages


def test_every_builtin_registers_through_its_entry_point_as_package_xgen():
    fresh = new_registry(builtin_entry_points())
    assert fresh.failures == []
    things = fresh.list()
    assert {"vae-gradcam", "conv-vae", "digits"} <= {info.name for info in things}
    for info in things:
        assert (info.package, info.builtin) == ("xgen", True), info
        assert info.version == importlib.metadata.version("xgen")
        assert info.obj.__module__.startswith(f"xgen_plugins.{info.plugin}"), info
    assert {info.plugin for info in things} == {ep.name for ep in builtin_entry_points()}


def test_the_core_never_imports_xgen_plugins_by_name():
    offenders = []
    for path in sorted((REPO / "xgen").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                names = [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if str(n).split(".")[0] == "xgen_plugins"]
    assert offenders == []


# -- hook specs ------------------------------------------------------------------------------------------------------


def hookspec_functions() -> dict[str, types.FunctionType]:
    return {
        name: fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "xgen_spec") and fn.__module__ == hookspecs.__name__
    }


def test_every_hookspec_is_documented_with_an_example():
    specs = hookspec_functions()
    assert len(specs) == 6
    for name, fn in specs.items():
        doc = inspect.getdoc(fn) or ""
        assert "Example" in doc, f"hook {name} has no example in its docstring"
        assert ":param register:" in doc, f"hook {name} does not document its parameter"


def test_every_hookspec_is_collected_by_the_registry():
    assert {hook for _, hook in KINDS.values()} == set(hookspec_functions())


@pytest.mark.parametrize("hook", sorted(hookspec_functions()))
def test_every_hookspec_example_registers_cleanly(registry, hook):
    doc = inspect.getdoc(hookspec_functions()[hook])
    example = textwrap.dedent(doc.split("Example::", 1)[1])
    module = make_module(f"example_{hook}", example)
    kind = next(kind for kind, (_, name) in KINDS.items() if name == hook)
    registered = re.findall(r"register\((\w+)\)", example)
    with xgen.plugins.plugin(module, f"example-{hook}"):
        assert registry.failures == []
        for class_name in registered:
            cls = getattr(module, class_name)
            assert registry.get(kind, cls.name) is cls
