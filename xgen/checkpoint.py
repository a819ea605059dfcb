"""`xgen.save` / `xgen.load`: checkpoints that hold data only, so loading one never runs code.

An xgen checkpoint is a dict of plain data and tensors (architecture name, config, input shape, default explainer,
training record, weights) read with `torch.load(weights_only=True)`. TorchScript files load as they are. A fully
pickled module can run arbitrary code when unpickled, so it is refused unless the caller passes `trust=True`.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xgen.errors import CheckpointError, PluginError
from xgen.files import atomic_path
from xgen.model import Model, wrap
from xgen.plugins import get_registry

FORMAT = "xgen-checkpoint"
FORMAT_VERSION = 1


def save(model: Model, path: str | os.PathLike[str]) -> Path:
    """Write `model` (built by an xgen architecture) to `path` atomically: config, metadata and weights."""
    if not isinstance(model, Model) or model.architecture is None:
        raise CheckpointError(
            "xgen.save needs a model built by an xgen architecture (from xgen.train or xgen.load); "
            "for any other module use torch.jit.save(torch.jit.script(module), path), which xgen.load reads."
        )
    from xgen import __version__

    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xgen_version": __version__,
        "architecture": model.architecture,
        "config": dict(model.config),
        "input_shape": list(model.input_shape) if model.input_shape else None,
        "default_explainer": model.default_explainer,
        "default_scorer": model.default_scorer,
        "metadata": dict(model.metadata),
        "state_dict": {k: v.detach().cpu() for k, v in model.module.state_dict().items()},
    }
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())


def _pickle_globals(path: Path) -> list[str] | None:
    """The Python globals a plain pickle would import, or None if the file is not a pickle. Executes nothing."""
    globals_found: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as fh:
            for opcode, arg, _ in pickletools.genops(fh):
                if opcode.name in {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"}:
                    strings.append(str(arg))
                elif opcode.name in {"GLOBAL", "INST"}:
                    globals_found.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    globals_found.append(f"{strings[-2]}.{strings[-1]}")
                elif opcode.name == "STOP":
                    break
    except Exception:
        return None
    return globals_found


def _refuse(path: Path, found: list[str]) -> CheckpointError:
    shown = ", ".join(found[:3]) + (" ..." if len(found) > 3 else "")
    return CheckpointError(
        f"{path} is a pickled Python object ({shown}) and loading it could run arbitrary code; "
        "pass trust=True (--trust-checkpoint) only if you trust its source, or re-save it with xgen.save."
    )


def _read(path: Path, trust: bool, device: torch.device) -> Any:
    if zipfile.is_zipfile(path):
        if _is_torchscript(path):
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.load.*")
                    return torch.jit.load(str(path), map_location=device)
            except Exception as exc:
                raise CheckpointError(f"{path} looks like TorchScript but does not load ({exc}).") from None
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            unsafe = []
        if unsafe and not trust:
            raise _refuse(path, unsafe)
    else:
        found = _pickle_globals(path)
        if found is None:
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint; pass a file written by xgen.save or torch.jit.save."
            )
        if found and not trust:
            raise _refuse(path, found)
    try:
        return torch.load(path, map_location=device, weights_only=not trust)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        # The legacy (non-zip) torch.save format hides its globals from the checks above; the safe loader names them.
        refused = re.findall(r"GLOBAL ([\w.]+)", str(exc)) if isinstance(exc, pickle.UnpicklingError) else []
        if refused and not trust:
            raise _refuse(path, list(dict.fromkeys(refused))) from None
        detail = str(exc).splitlines()[0][:160]
        raise CheckpointError(f"{path} could not be read as a PyTorch checkpoint ({detail}).") from None


def load(path: str | os.PathLike[str], *, trust: bool = False, device: str | torch.device = "cpu") -> Model:
    """Read an xgen checkpoint, a TorchScript file, or (only with trust=True) a pickled module, and wrap it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist; check the path, or train one with "
            f"'xgen train conv-vae --data digits:normal=1 --out {path}'."
        )
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the checkpoint file inside it.")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"checkpoint {path} cannot be read (permission denied); check its permissions.")
    device = torch.device(device)
    obj = _read(path, trust, device)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _rebuild(path, obj, device)
    if isinstance(obj, nn.Module):
        return wrap(obj)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} holds bare weights (a state_dict) with no architecture; build your module, call "
            "load_state_dict on it and pass it to xgen.wrap(module)."
        )
    kind = f"a dict with keys {sorted(map(str, obj))[:5]}" if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(
        f"{path} is not an xgen checkpoint (it holds {kind}); xgen reads files written by xgen.save, "
        "TorchScript files, and trusted pickled modules."
    )


def _rebuild(path: Path, payload: dict[str, Any], device: torch.device) -> Model:
    version = payload.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer xgen (checkpoint format {version}); upgrade xgen to read it."
        )
    name = payload.get("architecture")
    try:
        architecture_cls = get_registry().get("architecture", name)
    except PluginError as exc:
        raise CheckpointError(
            f"{path} needs architecture '{name}', which no loaded plugin provides ({exc}); "
            "install the plugin that defines it."
        ) from None
    architecture = architecture_cls(**payload.get("config", {}))
    input_shape = tuple(payload["input_shape"])
    module = architecture.build(input_shape)
    try:
        module.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise CheckpointError(
            f"{path}: the weights do not fit architecture '{name}' with its saved config ({first[0].strip()})."
        ) from None
    module.to(device).eval()
    model = architecture.wrap(module, input_shape)
    model.metadata = dict(payload.get("metadata", {}))
    return model
