import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest

from textgen.config import (
    RANGES,
    SECTIONS,
    Recipe,
    apply_overrides,
    dump_toml,
    from_dict,
    list_recipe_files,
    load_recipe,
    parse_override,
    read_toml,
)
from textgen.errors import UserError


def test_override_values_parse_as_toml_literals():
    assert parse_override("train.lr=0.1") == (["train", "lr"], 0.1)
    assert parse_override("model.tie_weights=true") == (["model", "tie_weights"], True)
    assert parse_override("data.corpus=ptb") == (["data", "corpus"], "ptb")
    assert parse_override("model.layers = 3") == (["model", "layers"], 3)


def test_override_is_applied_and_type_checked():
    recipe = from_dict(apply_overrides({"train": {"lr": 1.0}}, ["train.lr=3", "model.cell=gru"]))
    assert recipe.train.lr == 3.0 and isinstance(recipe.train.lr, float)
    assert recipe.model.cell == "gru"
    with pytest.raises(UserError, match="must be int"):
        from_dict(apply_overrides({}, ["model.layers=two"]))
    with pytest.raises(UserError, match="must be one of"):
        from_dict(apply_overrides({}, ["model.cell=transformer"]))


def test_unknown_key_names_closest_and_lists_valid_keys():
    with pytest.raises(UserError) as err:
        apply_overrides({}, ["train.learning_rate=0.1"])
    message = str(err.value)
    assert "unknown recipe key 'train.learning_rate'" in message
    assert "train.lr" in message and "model.hidden" in message
    with pytest.raises(UserError, match="did you mean 'model.hidden'"):
        from_dict({"model": {"hiden": 3}})


def test_set_without_equals_is_rejected():
    with pytest.raises(UserError, match="has no '='"):
        parse_override("train.lr")


def test_every_shipped_recipe_loads_and_round_trips():
    files = list_recipe_files()
    assert {"shakespeare", "ptb-small", "ptb-medium"} <= {p.stem for p in files}
    for path in files:
        recipe = load_recipe(str(path))
        assert read_toml(path).get("description"), f"{path.name} needs a description"
        again = from_dict(__import__("tomllib").loads(dump_toml(recipe)))
        assert again == recipe


NUMERIC_KEYS = [
    f"{section}.{name}"
    for section, cls in SECTIONS.items()
    for name, kind in typing.get_type_hints(cls).items()
    if kind in (int, float)
]


def test_every_numeric_setting_has_a_declared_range():
    assert set(NUMERIC_KEYS) - set(RANGES) == set()
    for path in list_recipe_files():  # and every shipped recipe is inside them
        load_recipe(str(path))


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.lr", math.nan),
        ("train.lr", -1.0),
        ("model.hidden", 0),
        ("model.hidden", -5),
        ("model.hidden", 10**11),
        ("train.batch_size", 0),
        ("train.bptt", 0),
        ("train.clip", math.nan),
        ("train.max_steps", -1),
        ("train.log_every", 0),
        ("train.seed", -1),
        ("train.seed", 10**400),
        ("data.vocab_size", 5),
        ("model.dropout", 1.0),
        ("decode.max_len_b", -5),
    ],
)
def test_out_of_range_settings_are_rejected_naming_key_and_range(key, value):
    section, name = key.split(".")
    with pytest.raises(UserError, match=rf"^{re.escape(key)} = {re.escape(repr(value))} is out of range: "):
        from_dict({section: {name: value}})


@pytest.mark.parametrize(
    "key", [k for k in NUMERIC_KEYS if typing.get_type_hints(SECTIONS[k.split(".")[0]])[k.split(".")[1]] is float]
)
def test_no_float_setting_accepts_nan_or_infinity(key):
    for literal in ("nan", "inf", "-inf"):
        with pytest.raises(UserError, match="is out of range: a finite number"):
            from_dict(apply_overrides({}, [f"{key}={literal}"]))


def test_range_error_reads_as_documented():
    with pytest.raises(UserError) as err:
        load_recipe("shakespeare", ["train.lr=nan"])
    assert str(err.value) == "train.lr = nan is out of range: a finite number > 0"


def test_toml_syntax_error_reports_line(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = 0.1\nbatch_size = = 3\n")
    with pytest.raises(UserError, match="line 3"):
        load_recipe(str(bad))


def test_unknown_recipe_lists_available():
    with pytest.raises(UserError, match="available recipes are .*shakespeare"):
        load_recipe("no-such-recipe")


def test_defaults_are_frozen():
    recipe = Recipe()
    with pytest.raises(Exception):
        recipe.train.lr = 3  # type: ignore[misc]


@pytest.mark.parametrize("objective", ["xent", "mixer", "dad", "e2e"])
def test_finetune_recipes_are_the_measured_fine_tuning_settings(objective):
    """recipes/finetune-*.toml are exactly the objective recipe plus experiments/compare-objectives.sh's
    Multi30k overrides, the settings docs/RESULTS.md's fine-tuning table was measured with."""
    import re

    script = (Path(__file__).resolve().parent.parent / "experiments" / "compare-objectives.sh").read_text()
    block = script[script.index("M30K=(") : script.index(")", script.index("M30K=("))]
    overrides = re.findall(r"--set (\S+)", block)
    assert len(overrides) == 11
    assert "--set train.max_minutes=0 " in script[script.index("run() {") :]  # every run: epochs, not minutes
    measured = load_recipe(objective, overrides + ["train.max_minutes=0"])
    recipe = load_recipe(f"finetune-{objective}")
    assert recipe.name == f"finetune-{objective}"
    for section in ("data", "model", "train", "decode", "objective"):
        assert getattr(recipe, section) == getattr(measured, section), section


def test_every_finetune_recipe_states_its_own_budget():
    """A fine-tune runs its epochs: no time cap inherited from the recipe that trains its start model."""
    from textgen.config import list_recipe_files, read_toml

    finetunes = [path for path in list_recipe_files() if path.stem.startswith("finetune-")]
    assert len(finetunes) == 7
    for path in finetunes:
        assert read_toml(path)["train"]["max_minutes"] == 0, path.stem
        assert load_recipe(path.stem).train.max_minutes == 0


@pytest.mark.parametrize("name", ["finetune-mrt", "finetune-mrt-beam", "finetune-mixer-loo"])
def test_sequence_level_finetune_recipes_have_finetune_xents_budget(name):
    """The sequence-level fine-tunes compare with finetune-xent at one budget: the same data, model, decoding
    and training settings; only the objective differs."""
    recipe, xent = load_recipe(name), load_recipe("finetune-xent")
    for section in ("data", "model", "train", "decode"):
        assert getattr(recipe, section) == getattr(xent, section), section
    if name == "finetune-mrt":
        assert (recipe.objective.name, recipe.objective.mrt_candidates, recipe.objective.mrt_beam) == ("mrt", 4, 0)
    elif name == "finetune-mrt-beam":  # finetune-mrt with beam 4's 4-best added, nothing else changed
        mrt = load_recipe("finetune-mrt").objective
        assert recipe.objective == dataclasses.replace(mrt, mrt_beam=4) != mrt
    else:  # finetune-mixer with the leave-one-out baseline over 4 samples, nothing else changed
        mixer = load_recipe("finetune-mixer").objective
        assert recipe.objective == dataclasses.replace(mixer, baseline="loo", samples=4) != mixer
