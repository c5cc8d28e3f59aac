import dataclasses
import math
import re
import tomllib
from pathlib import Path

import pytest

from textgen.config import (
    RANGES,
    MixerConfig,
    MrtConfig,
    Recipe,
    apply_overrides,
    dump_toml,
    from_dict,
    leaf_types,
    list_recipe_files,
    load_recipe,
    parse_override,
    read_toml,
    recipe_from_checkpoint,
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


NUMERIC_KEYS = [key for key, kind in leaf_types().items() if kind in (int, float)]


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


@pytest.mark.parametrize("key", [k for k in NUMERIC_KEYS if leaf_types()[k] is float])
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


@pytest.mark.parametrize("objective", ["mixer", "dad", "e2e"])
def test_finetune_recipes_are_one_set_of_measured_settings_on_each_objective(objective):
    """finetune-{xent,mixer,dad,e2e} are the measured fine-tuning settings (results/objectives-one-budget/) on
    each objective recipe: the same tables in every file, differing only in the recipe they extend."""
    from textgen.config import read_toml, recipe_path

    def settings(name: str) -> dict:
        return {k: v for k, v in read_toml(recipe_path(name)).items() if k not in ("description", "extends")}

    assert read_toml(recipe_path(f"finetune-{objective}"))["extends"] == objective
    assert settings(f"finetune-{objective}") == settings("finetune-xent")
    recipe, xent = load_recipe(f"finetune-{objective}"), load_recipe("finetune-xent")
    assert recipe.objective.name == objective and recipe.train.max_minutes == 0
    for section in ("data", "model", "train", "decode"):
        assert getattr(recipe, section) == getattr(xent, section), section


def test_every_finetune_recipe_states_its_own_budget():
    """A fine-tune runs its epochs: no time cap inherited from the recipe that trains its start model."""
    from textgen.config import list_recipe_files, read_toml

    finetunes = [path for path in list_recipe_files() if path.stem.startswith("finetune-")]
    assert len(finetunes) == 11
    for path in finetunes:
        assert read_toml(path)["train"]["max_minutes"] == 0, path.stem
        assert load_recipe(path.stem).train.max_minutes == 0


@pytest.mark.parametrize("name", ["finetune-mrt", "finetune-mrt-beam", "finetune-mixer-loo", "finetune-rank"])
def test_sequence_level_finetune_recipes_have_finetune_xents_budget(name):
    """The sequence-level fine-tunes compare with finetune-xent at one budget: the same data, model, decoding
    and training settings; only the objective differs."""
    recipe, xent = load_recipe(name), load_recipe("finetune-xent")
    for section in ("data", "model", "train", "decode"):
        assert getattr(recipe, section) == getattr(xent, section), section
    if name == "finetune-mrt":
        assert (recipe.objective.name, recipe.objective.mrt.candidates, recipe.objective.mrt.beam) == ("mrt", 4, 0)
    elif name == "finetune-rank":  # beam 4's 4-best, as finetune-mrt-beam's beam candidates
        assert (recipe.objective.name, recipe.objective.rank.beam, recipe.objective.rank.candidates) == ("rank", 4, 0)
    elif name == "finetune-mrt-beam":  # finetune-mrt with beam 4's 4-best added, nothing else changed
        mrt = load_recipe("finetune-mrt").objective
        assert recipe.objective == dataclasses.replace(mrt, mrt=dataclasses.replace(mrt.mrt, beam=4)) != mrt
    else:  # finetune-mixer with the leave-one-out baseline over 4 samples, nothing else changed
        mixer = load_recipe("finetune-mixer").objective
        loo = dataclasses.replace(mixer.mixer, baseline="loo", samples=4)
        assert recipe.objective == dataclasses.replace(mixer, mixer=loo) != mixer
        assert recipe.objective.mixer.T == 12  # a child recipe's [objective.mixer] keeps its parent's other keys


def test_the_aeslc_ranking_finetune_starts_from_a_summarize_model_at_a_fine_tuning_budget():
    """init_from refuses any other model or data setting than the start model's; the budget is epochs."""
    recipe, start = load_recipe("finetune-rank-summarize"), load_recipe("summarize")
    assert (recipe.model, recipe.data, recipe.decode) == (start.model, start.data, start.decode)
    assert recipe.objective.name == "rank" and recipe.objective.rank.reward == "rouge2"  # the scored metric
    assert recipe.train.max_minutes == 0 and recipe.train.lr < start.train.lr
    assert recipe.train.valid_beam == recipe.decode.beam == 5  # picked by the search it is scored with


def test_transformer_finetunes_start_from_the_transformer_recipes_model_and_differ_only_in_objective():
    """finetune-{xent,mixer-loo}-transformer take a translate-multi30k-transformer checkpoint as it is (init_from
    refuses any other model or data setting) and keep their LSTM counterparts' settings otherwise."""
    start = load_recipe("translate-multi30k-transformer")
    xent, loo = load_recipe("finetune-xent-transformer"), load_recipe("finetune-mixer-loo-transformer")
    for recipe, lstm in ((xent, "finetune-xent"), (loo, "finetune-mixer-loo")):
        assert (recipe.model, recipe.data) == (start.model, start.data)
        assert recipe.objective == load_recipe(lstm).objective
        assert dataclasses.replace(recipe.train, clip=5.0) == load_recipe(lstm).train
    assert (xent.train, xent.decode) == (loo.train, loo.decode)


def test_each_objective_has_its_own_table_settable_with_set():
    recipe = load_recipe("mixer", ["objective.mixer.reward=rouge2", "objective.mrt.beam=3", "objective.dad.max_p=0.5"])
    assert (recipe.objective.mixer.reward, recipe.objective.mrt.beam, recipe.objective.dad.max_p) == ("rouge2", 3, 0.5)
    assert recipe.objective.mixer.T == 20 and recipe.objective.mrt.reward == "bleu"  # the recipe's, and a default
    with pytest.raises(UserError, match="'objective.mixer.reward' must be one of"):
        load_recipe("mixer", ["objective.mixer.reward=meteor"])
    with pytest.raises(UserError, match=r"objective.mixer.T = 0 is out of range"):
        load_recipe("mixer", ["objective.mixer.T=0"])
    assert "[objective.mixer]\nT = 20" in dump_toml(recipe)
    assert from_dict(tomllib.loads(dump_toml(recipe))) == recipe


@pytest.mark.parametrize(
    "old, new",
    [
        ("mixer_T", "use objective.mixer.T"),
        ("dad_max_p", "use objective.dad.max_p"),
        ("e2e_k", "use objective.e2e.k"),
        ("mrt_beam", "use objective.mrt.beam"),
        ("samples", "use objective.mixer.samples"),
        ("reward", "use objective.mixer.reward or objective.mrt.reward"),
    ],
)
def test_a_flat_objective_key_of_earlier_versions_says_where_it_moved(old, new, tmp_path):
    message = f"objective.{old} moved: {new}"
    with pytest.raises(UserError) as err:
        load_recipe("mixer", [f"objective.{old}=1"])
    assert str(err.value) == message
    path = tmp_path / "old.toml"
    path.write_text(f'extends = "mixer"\n[objective]\n{old} = 1\n')
    with pytest.raises(UserError) as err:
        load_recipe(str(path))
    assert str(err.value) == message


def test_a_checkpoint_recipe_with_flat_objective_keys_reads_into_the_tables():
    """Checkpoints store the recipe they were trained with; those of earlier versions have flat keys."""
    stored = dataclasses.asdict(load_recipe("paper-xent"))
    stored["objective"] = {"name": "mixer", "mixer_T": 7, "mixer_delta": 2, "dad_max_p": 0.5, "e2e_k": 4,
                           "mrt_beam": 3, "reward": "rouge2", "xent_weight": 0.25, "baseline": "loo", "samples": 2,
                           "sample_temperature": 0.5}  # fmt: skip
    objective = recipe_from_checkpoint({"recipe": stored}).objective
    assert (objective.name, objective.sample_temperature) == ("mixer", 0.5)
    assert (objective.mixer.T, objective.mixer.delta, objective.mixer.baseline, objective.mixer.samples) == (
        7,
        2,
        "loo",
        2,
    )
    assert (objective.dad.max_p, objective.e2e.k, objective.mrt.beam) == (0.5, 4, 3)
    # a key shared then goes to the table of the objective that ran: a resume with its recipe finds no difference
    assert (objective.mixer.reward, objective.mixer.xent_weight) == ("rouge2", 0.25)
    assert (objective.mrt.reward, objective.mrt.xent_weight) == (MrtConfig().reward, MrtConfig().xent_weight)
    stored["objective"] = {"name": "mrt", "reward": "rouge1", "xent_weight": 0.3, "mrt_candidates": 4}
    objective = recipe_from_checkpoint({"recipe": stored}).objective
    assert (objective.mrt.reward, objective.mrt.xent_weight, objective.mrt.candidates) == ("rouge1", 0.3, 4)
    assert objective.mixer == MixerConfig()
    assert objective.mixer.min_s == MixerConfig().min_s  # not stored: the default
