"""Options: annotated class attributes, validated and converted from CLI strings by `Configurable.__init__`."""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xgen
import xgen.plugins
from xgen.options import Configurable, Option

FAST = settings(max_examples=60, deadline=None)


class Opts(Configurable):
    """One option of every supported kind."""

    name = "opts"
    kind = "explainer"
    flag: bool = False
    count: int = 3
    rate: float = 0.5
    mode: Literal["abs", "relu", "none"] = "abs"
    level: Literal[1, 2, 3] = 1
    dim: int | None = None
    layer: Optional[str] = None  # noqa: UP045 -- the typing.Optional spelling must work too
    label: str = "x"
    sizes: tuple[int, ...] = ()
    weights: list[float] = [1.0]
    per_dim: bool = False

    not_an_option: ClassVar[int] = 7
    _private: int = 0
    undeclared_default: int  # annotated without a default: not an option


class NoOptions(Configurable):
    name = "bare"
    kind = "scorer"


class Derived(Opts):
    name = "derived"
    extra: float = 2.0
    count: int = 10  # overrides the base default


class Checked(Configurable):
    name = "checked"
    kind = "metric"
    low: float = 0.0
    high: float = 1.0

    def validate(self) -> None:
        if self.low >= self.high:
            raise xgen.XgenError(f"checked needs low < high, got low={self.low} and high={self.high}.")


def error_of(cls: type[Configurable], **options) -> str:
    with pytest.raises(xgen.XgenError) as info:
        cls(**options)
    message = str(info.value)
    assert "\n" not in message and message.endswith((".", "?")), message
    return message


# -- declaration ---------------------------------------------------------------------------------------------------


def test_options_are_the_annotated_attributes_with_defaults_in_declaration_order():
    options = Opts.options()
    assert list(options) == [
        "flag",
        "count",
        "rate",
        "mode",
        "level",
        "dim",
        "layer",
        "label",
        "sizes",
        "weights",
        "per_dim",
    ]
    assert options["count"] == Option("count", int, 3)
    assert options["mode"].type_name == "'abs' | 'relu' | 'none'"
    assert options["dim"].type_name == "int | None"
    assert options["layer"].type_name == "str | None"
    assert NoOptions.options() == {}


def test_a_subclass_inherits_options_and_may_change_defaults():
    options = Derived.options()
    assert list(options)[-1] == "extra"
    assert options["count"].default == 10
    assert Derived().config()["count"] == 10
    assert Opts().config()["count"] == 3


def test_defaults_and_config_round_trip():
    opts = Opts()
    config = opts.config()
    assert config == {name: option.default for name, option in Opts.options().items()}
    assert Opts(**config).config() == config
    changed = Opts(count="5", mode="relu", per_dim="yes")
    assert changed.config() == {**config, "count": 5, "mode": "relu", "per_dim": True}
    assert Opts(**{k: str(v) for k, v in changed.config().items() if k in {"count", "mode", "rate"}}).config() == {
        **config,
        "count": 5,
        "mode": "relu",
    }


# -- names -----------------------------------------------------------------------------------------------------------


def test_an_unknown_option_gets_did_you_mean():
    message = error_of(Opts, cuont=4)
    assert message == "explainer 'opts' has no option 'cuont'. Did you mean 'count'?"


def test_an_unknown_option_far_from_all_lists_them():
    message = error_of(Opts, zzzzzz=1)
    assert message.startswith("explainer 'opts' has no option 'zzzzzz'. Available: ")
    assert "count" in message and "per_dim" in message


def test_a_class_without_options_says_it_takes_none():
    assert error_of(NoOptions, anything="1") == "scorer 'bare' has no option 'anything'. It takes no options."


@pytest.mark.parametrize("key", ["not_an_option", "_private", "undeclared_default", "name", "description", "kind"])
def test_class_variables_private_and_default_less_attributes_are_not_options(key):
    assert f"has no option '{key}'" in error_of(Opts, **{key: "1"})


def test_dashes_in_option_names_mean_underscores():
    assert Opts(**{"per-dim": "true"}).per_dim is True


# -- coercion ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "given_value", "expected"),
    [
        ("flag", "true", True),
        ("flag", "FALSE", False),
        ("flag", "Yes", True),
        ("flag", "off", False),
        ("flag", "1", True),
        ("flag", "0", False),
        ("flag", True, True),
        ("count", "42", 42),
        ("count", "-7", -7),
        ("count", 9, 9),
        ("rate", "1e-3", 1e-3),
        ("rate", "2", 2.0),
        ("rate", 3, 3.0),
        ("rate", "-inf", -math.inf),
        ("mode", "relu", "relu"),
        ("mode", "none", "none"),
        ("level", "2", 2),
        ("level", 3, 3),
        ("dim", "none", None),
        ("dim", "None", None),
        ("dim", "null", None),
        ("dim", None, None),
        ("dim", "4", 4),
        ("layer", "encoder.2", "encoder.2"),
        ("layer", None, None),
        ("label", "hello, world", "hello, world"),
        ("sizes", "1,2,3", (1, 2, 3)),
        ("sizes", [4, "5"], (4, 5)),
        ("sizes", "", ()),
        ("weights", "0.5,2", [0.5, 2.0]),
    ],
)
def test_cli_strings_and_python_values_are_coerced(option, given_value, expected):
    value = getattr(Opts(**{option: given_value}), option)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("spelling", ["none", "None", "NULL"])
def test_none_on_the_command_line_clears_an_optional_string(spelling):
    assert Opts(layer=spelling).layer is None


def test_a_literal_choice_spelled_none_stays_that_choice_when_none_is_also_allowed():
    class Sign(Configurable):
        name = "sign"
        sign: Literal["abs", "none"] | None = "abs"

    assert Sign(sign="none").sign == "none"
    assert Sign(sign=None).sign is None


@pytest.mark.parametrize(
    ("option", "bad", "reason"),
    [
        ("flag", "maybe", "expected true or false"),
        ("flag", 1, "expected true or false"),
        ("count", "3.5", "expected an integer"),
        ("count", "three", "expected an integer"),
        ("count", True, "expected an integer"),
        ("count", 2.0, "expected an integer"),
        ("rate", "fast", "expected a number"),
        ("rate", True, "expected a number"),
        ("mode", "square", "expected one of 'abs', 'relu', 'none'"),
        ("mode", "ABS", "expected one of 'abs', 'relu', 'none'"),
        ("level", "4", "expected one of 1, 2, 3"),
        ("level", 1.0 + 1e-9, "expected one of 1, 2, 3"),
        ("dim", "x", "expected an integer"),
        ("label", 5, "expected a string"),
        ("sizes", "1,two", "expected an integer"),
        ("sizes", 5, "expected a comma-separated list"),
    ],
)
def test_a_bad_value_is_one_clear_sentence(option, bad, reason):
    message = error_of(Opts, **{option: bad})
    assert message == f"option '{option}' of explainer 'opts' got {bad!r}: {reason}."


def test_validate_checks_combinations_after_coercion():
    assert Checked(low="0.2", high="0.4").low == 0.2
    assert error_of(Checked, low="2") == "checked needs low < high, got low=2.0 and high=1.0."


def test_options_are_per_instance():
    a, b = Opts(count="1"), Opts()
    assert (a.count, b.count, Opts.count) == (1, 3, 3)


def test_a_builtin_plugin_gets_the_same_checks(registry):
    gradcam = registry.get("explainer", "vae-gradcam")
    assert gradcam(per_dim="true", dim="3", layer="none").config() == {
        "layer": None,
        "sign": "abs",
        "normalize": "minmax",
        "grad_norm": "none",
        "dim": 3,
        "per_dim": True,
    }
    assert "Did you mean 'sign'" in error_of(gradcam, sing="abs")
    assert error_of(gradcam, sign="square") == (
        "option 'sign' of explainer 'vae-gradcam' got 'square': expected one of 'abs', 'relu', 'none'."
    )
    assert "cannot combine per_dim=true with grad_norm=l2" in error_of(gradcam, per_dim="1", grad_norm="l2")
    assert "Did you mean 'latent'" in error_of(registry.get("architecture", "conv-vae"), latnet="3")


# -- properties ------------------------------------------------------------------------------------------------------


@FAST
@given(st.integers())
def test_any_integer_round_trips_through_its_string(n):
    assert Opts(count=str(n)).count == n
    assert Opts(dim=str(n)).dim == n


@FAST
@given(st.floats(allow_nan=False))
def test_any_float_round_trips_through_its_repr(x):
    assert Opts(rate=repr(x)).rate == x


@FAST
@given(st.sampled_from(["true", "false", "yes", "no", "on", "off", "1", "0"]), st.data())
def test_booleans_accept_their_words_in_any_case(word, data):
    spelled = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    assert Opts(flag=spelled).flag is (word in {"true", "yes", "on", "1"})


@FAST
@given(st.text().filter(lambda s: s not in {"abs", "relu", "none"}))
def test_any_string_outside_a_literal_is_rejected(text):
    with pytest.raises(xgen.XgenError, match="expected one of 'abs', 'relu', 'none'"):
        Opts(mode=text)


@FAST
@given(st.text().filter(lambda s: s.strip().lower() not in {"true", "false", "yes", "no", "on", "off", "1", "0"}))
def test_any_other_string_is_not_a_boolean(text):
    with pytest.raises(xgen.XgenError, match="expected true or false"):
        Opts(flag=text)


@FAST
@given(st.lists(st.integers(), max_size=6))
def test_integer_lists_round_trip_through_comma_separated_strings(values):
    assert Opts(sizes=",".join(map(str, values))).sizes == tuple(values)
