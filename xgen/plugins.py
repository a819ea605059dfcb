"""The plugin manager: built-ins and third-party plugins found through the "xgen" entry-point group.

`Registry` owns a pluggy PluginManager and the named things plugins register. Nothing loads on import: the default
registry is built on first use by `get_registry()`, and tests inject their own with `use_registry(...)`.
Entry points load one at a time; a plugin that fails to import, misspells a hook, or registers something invalid
is recorded with its error and rolled back, and the rest keep working.

Environment switches for bad days:
  XGEN_LOAD_PLUGINS=a,b   load only these third-party entry points (built-ins still load)
  XGEN_BLOCK_PLUGINS=a,b  never load these entry points, built-in or not
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import inspect
import os
import re
import traceback
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from xgen import hookspecs
from xgen.architecture import Architecture
from xgen.claims import Claim
from xgen.data import Dataset
from xgen.errors import PluginError, XgenError, did_you_mean
from xgen.methods import METRIC_REQUIREMENTS, MODEL_REQUIREMENTS, Explainer, Metric, Scorer

GROUP = "xgen"
BUILTIN_DISTRIBUTION = "xgen"

#: kind -> (base class, hook name)
KINDS: dict[str, tuple[type, str]] = {
    "explainer": (Explainer, "xgen_register_explainers"),
    "scorer": (Scorer, "xgen_register_scorers"),
    "metric": (Metric, "xgen_register_metrics"),
    "architecture": (Architecture, "xgen_register_models"),
    "dataset": (Dataset, "xgen_register_datasets"),
    "claim": (Claim, "xgen_register_claims"),
}

_KNOWN_REQUIREMENTS = {
    "explainer": MODEL_REQUIREMENTS.keys(),
    "scorer": MODEL_REQUIREMENTS.keys(),
    "metric": METRIC_REQUIREMENTS,
}
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginInfo:
    """One registered thing (or, with `error` set, one plugin that failed to load)."""

    name: str
    kind: str
    description: str
    plugin: str
    package: str | None = None
    version: str | None = None
    builtin: bool = False
    error: str | None = None
    obj: type | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "obj"}


@dataclass(frozen=True)
class _Source:
    plugin: str
    package: str | None
    version: str | None

    @property
    def label(self) -> str:
        if self.package is None:
            return f"plugin '{self.plugin}' (registered in-process)"
        return f"package '{self.package}' (plugin '{self.plugin}')"


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


def _check_registration(kind: str, obj: Any) -> None:
    """Raise PluginError unless `obj` is a valid, complete class of `kind`."""
    base = KINDS[kind][0]
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise PluginError(f"register() for {kind}s got {obj!r}, which is not a subclass of xgen.{base.__name__}.")
    label = obj.__qualname__
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise PluginError(f"{kind} class {label} does not implement {missing}().")
    name = getattr(obj, "name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"{kind} class {label} has name {name!r}; a name must be kebab-case, like 'abs-error'.")
    description = getattr(obj, "description", "")
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        raise PluginError(f"{kind} '{name}' needs a one-line description.")
    requires = set(getattr(obj, "requires", ()) or ())
    known = _KNOWN_REQUIREMENTS.get(kind, set())
    unknown = requires - set(known)
    if unknown:
        raise PluginError(f"{kind} '{name}' requires unknown {sorted(unknown)}; known requirements: {sorted(known)}.")
    try:
        obj.options()
    except Exception as exc:
        raise PluginError(f"{kind} '{name}' declares options whose types cannot be resolved: {exc}.") from exc


class Registry:
    """The plugin manager plus what its plugins registered, collected lazily and validated."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._load_failures: list[PluginInfo] = []
        self._collect_failures: list[PluginInfo] = []
        self._sources: dict[str, _Source] = {}
        self._things: dict[str, dict[str, tuple[type, _Source]]] | None = None
        self._conflicts: dict[tuple[str, str], str] = {}

    @property
    def failures(self) -> list[PluginInfo]:
        """The plugins that failed to import or to register, and the duplicate names, with their errors."""
        self._collect()
        return self._load_failures + self._collect_failures

    # -- loading ------------------------------------------------------------------------------------------------

    def add_plugin(
        self,
        plugin: object,
        name: str | None = None,
        *,
        package: str | None = None,
        version: str | None = None,
    ) -> str:
        """Register a plugin object or module in-process; return its name. Raises PluginError if it is invalid."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            registered = self.pm.register(plugin, name=name)
            if registered is None:
                raise PluginError(f"plugin '{name}' is blocked or already registered.")
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:
                self.pm.unregister(plugin)
                raise PluginError(
                    f"plugin '{name}' implements a hook xgen does not define ({exc}); "
                    f"the hooks are: {', '.join(spec for _, spec in KINDS.values())}."
                ) from exc
        except ValueError as exc:
            raise PluginError(f"plugin '{name}' could not be registered: {exc}.") from exc
        self._sources[name] = _Source(name, package, version)
        self._things = None
        return name

    def remove_plugin(self, name: str) -> None:
        """Unregister an in-process plugin by name (tests use this in `finally`)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self._sources.pop(name, None)
        self._things = None

    def load_entry_points(self, entry_points: Iterable[Any] | None = None, *, strict: bool = False) -> None:
        """Load every entry point of group "xgen", one at a time; record failures instead of raising.

        strict=True re-raises the first failure, as `Error importing plugin "name": ...`.
        """
        if entry_points is None:
            entry_points = metadata.entry_points(group=GROUP)
        allow = _env_list("XGEN_LOAD_PLUGINS")
        block = _env_list("XGEN_BLOCK_PLUGINS") or set()
        ordered = sorted(
            entry_points,
            key=lambda ep: (_dist_name(ep) != BUILTIN_DISTRIBUTION, _dist_name(ep) or "", ep.name),
        )
        for ep in ordered:
            package = _dist_name(ep)
            builtin = package == BUILTIN_DISTRIBUTION
            if ep.name in block or (allow is not None and not builtin and ep.name not in allow):
                continue
            if self.pm.get_plugin(ep.name) is not None:
                continue
            version = _dist_version(ep)
            try:
                module = ep.load()
                self.add_plugin(module, ep.name, package=package, version=version)
            except Exception as exc:
                message = str(exc) if isinstance(exc, XgenError) else f"{type(exc).__name__}: {exc}"
                if strict:
                    raise PluginError(f'Error importing plugin "{ep.name}": {message}') from exc
                self._record_failure(_Source(ep.name, package, version), message, traceback.format_exc())
                self._things = None

    def _record_failure(self, source: _Source, message: str, trace: str = "", *, loading: bool = True) -> None:
        (self._load_failures if loading else self._collect_failures).append(
            PluginInfo(
                name=source.plugin,
                kind="failed",
                description=trace.strip().splitlines()[-1] if trace.strip() else message,
                plugin=source.plugin,
                package=source.package,
                version=source.version,
                builtin=source.package == BUILTIN_DISTRIBUTION,
                error=message,
            )
        )
        warnings.warn(
            f"xgen plugin '{source.plugin}' failed to load: {message} (run 'xgen plugins' for details)",
            stacklevel=3,
        )

    # -- collecting ---------------------------------------------------------------------------------------------

    def _collect(self) -> dict[str, dict[str, tuple[type, _Source]]]:
        if self._things is not None:
            return self._things
        things: dict[str, dict[str, tuple[type, _Source]]] = {kind: {} for kind in KINDS}
        self._conflicts = {}
        self._collect_failures = []
        for plugin_name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            source = self._sources.get(plugin_name, _Source(plugin_name, None, None))
            staged: list[tuple[str, type]] = []
            try:
                for kind, (_, hook_name) in KINDS.items():
                    for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                        if impl.plugin is not plugin:
                            continue

                        def register(obj: Any, kind: str = kind, staged: list = staged) -> None:
                            _check_registration(kind, obj)
                            staged.append((kind, obj))

                        impl.function(**{arg: register for arg in impl.argnames})
            except Exception as exc:
                message = str(exc) if isinstance(exc, XgenError) else f"{type(exc).__name__}: {exc}"
                self._record_failure(source, message, traceback.format_exc(), loading=False)
                continue
            for kind, obj in staged:
                existing = things[kind].get(obj.name)
                if existing is not None and existing[0] is not obj:
                    message = (
                        f"{kind} name '{obj.name}' is registered by both {existing[1].label} and {source.label}; "
                        f"uninstall one, or block one with XGEN_BLOCK_PLUGINS={source.plugin}."
                    )
                    self._conflicts[(kind, obj.name)] = message
                    self._record_failure(source, message, loading=False)
                    continue
                things[kind][obj.name] = (obj, source)
        self._things = things
        return things

    # -- lookup -------------------------------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> type:
        """The class registered as `name` for `kind`; PluginError with "did you mean" when unknown."""
        things = self._collect()[kind]
        if (kind, name) in self._conflicts:
            raise PluginError(self._conflicts[(kind, name)])
        if name not in things:
            failed = [f for f in self.failures if f.plugin.replace("_", "-") == name]
            if failed:
                raise PluginError(f"{kind} '{name}' is unavailable: its plugin failed to load ({failed[0].error}).")
            raise PluginError(f"unknown {kind} '{name}'.{did_you_mean(name, things)}")
        return things[name][0]

    def names(self, kind: str) -> list[str]:
        return sorted(self._collect()[kind])

    def list(self) -> list[PluginInfo]:
        """Everything registered, by kind then name, followed by the plugins that failed to load."""
        infos = []
        for kind, entries in self._collect().items():
            for name, (obj, source) in sorted(entries.items()):
                infos.append(
                    PluginInfo(
                        name=name,
                        kind=kind,
                        description=obj.description,
                        plugin=source.plugin,
                        package=source.package,
                        version=source.version,
                        builtin=source.package == BUILTIN_DISTRIBUTION,
                        obj=obj,
                    )
                )
        return infos + self.failures


def _dist_name(ep: Any) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else dist.name


def _dist_version(ep: Any) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else dist.version


def new_registry(entry_points: Iterable[Any] | None = None, *, strict: bool = False) -> Registry:
    """A fresh registry with the entry points loaded (all installed ones unless `entry_points` is given)."""
    registry = Registry()
    registry.load_entry_points(entry_points, strict=strict)
    return registry


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    if _default is None:
        _default = new_registry()
    return _default


@contextlib.contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make `registry` the process-wide one inside the block (for tests and embedding applications)."""
    global _default
    previous, _default = _default, registry
    try:
        yield registry
    finally:
        _default = previous


@contextlib.contextmanager
def plugin(obj: object, name: str | None = None, registry: Registry | None = None) -> Iterator[str]:
    """Register a plugin in-process for the duration of the block, then unregister it."""
    registry = registry or get_registry()
    registered = registry.add_plugin(obj, name)
    try:
        yield registered
    finally:
        registry.remove_plugin(registered)


def lookup(kind: str, name: str) -> type:
    """Shortcut for `get_registry().get(kind, name)`."""
    return get_registry().get(kind, name)


def open_dataset(spec: str) -> Dataset:
    """Build the dataset a spec names: "digits:normal=1", "textures:brick", "folder:path/to/images"."""
    from xgen.data import parse_spec

    name, options, bare = parse_spec(spec)
    dataset_cls = lookup("dataset", name)
    if bare is not None:
        if dataset_cls.positional is None:
            raise XgenError(
                f"dataset '{name}' got '{bare}' without a key; write key=value "
                f"(options: {', '.join(dataset_cls.options()) or 'none'})."
            )
        options[dataset_cls.positional] = bare
    return dataset_cls(**options)
