"""The exceptions xgen raises for bad input: each carries one sentence that says what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class XgenError(Exception):
    """Bad usage or input. The message is one sentence for the user; the CLI exits with status 2."""


class PluginError(XgenError):
    """A plugin is broken, duplicated, or unknown."""


class CheckpointError(XgenError):
    """A checkpoint is missing, unreadable, foreign, or not trusted."""


class InputError(XgenError):
    """An image or tensor does not fit the model or is not a valid image."""


class WrapError(XgenError):
    """A module cannot provide what an explainer requires."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the closest choice, or a list of the choices when none is close."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f" Did you mean '{close[0]}'?"
    if not choices:
        return " None is available."
    return " Available: " + ", ".join(choices) + "."
