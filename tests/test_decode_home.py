"""decode/ as the one home of decoding: it imports no task module, a recipe's [decode.mbr] table is read,
overridden and stored like any other section, and decode, eval and the API all go through one dispatch."""

import ast
import json
import tomllib
from pathlib import Path

import pytest
import torch

import textgen
from textgen.config import MbrConfig, dump_toml, from_dict, load_recipe, recipe_from_checkpoint, to_dict
from textgen.errors import UserError

DECODE = Path(textgen.__file__).parent / "decode"
# what decoding may build on: settings, data, models, metrics and low-level helpers, never a task, the trainer,
# objectives or anything above them (api, cli, evaluate, serve)
ALLOWED = ("config", "data", "decode", "device", "errors", "metrics", "models", "precision")


def textgen_imports(path: Path) -> set[str]:
    """Every textgen module `path` imports, at the top or inside a function (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from ..models import y, inside textgen/decode/
                parents = ["textgen", "decode"][: 2 - (node.level - 1)]
                base = ".".join([*parents, base] if base else parents)
            found |= {base} if base != "textgen" else {f"textgen.{alias.name}" for alias in node.names}
    return {name for name in found if name == "textgen" or name.startswith("textgen.")}


def test_no_module_in_decode_imports_a_task_or_anything_above_it():
    modules = sorted(DECODE.glob("*.py"))
    assert {p.stem for p in modules} >= {"driver", "dispatch", "mbr", "search", "sampling", "settings"}
    for path in modules:
        for name in textgen_imports(path):
            top = name.split(".")[1] if "." in name else ""
            assert top in ALLOWED, f"textgen/decode/{path.name} imports {name}"


def test_the_import_check_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from textgen.tasks.seq2seq import Seq2SeqTask\n    from textgen import tasks\n")
    assert textgen_imports(probe) == {"textgen.tasks.seq2seq", "textgen.tasks"}


def test_decode_mbr_is_a_recipe_table_with_overrides_extends_and_round_trip(tmp_path):
    recipe = load_recipe("shakespeare", ["decode.mbr.samples=8", "decode.mbr.utility=chrf", "decode.temperature=0.7"])
    assert recipe.decode.mbr == MbrConfig(samples=8, utility="chrf") and recipe.decode.temperature == 0.7
    assert from_dict(tomllib.loads(dump_toml(recipe))) == recipe
    assert "[decode.mbr]\nsamples = 8" in dump_toml(recipe)
    parent = tmp_path / "parent.toml"
    parent.write_text('task = "seq2seq"\n[decode]\nbeam = 3\n[decode.mbr]\nsamples = 4\nepsilon = 0.05\n')
    child = tmp_path / "child.toml"
    child.write_text('extends = "parent.toml"\n[decode.mbr]\nutility = "rouge2"\n')
    merged = load_recipe(str(child)).decode
    assert (merged.beam, merged.mbr.samples, merged.mbr.epsilon, merged.mbr.utility) == (3, 4, 0.05, "rouge2")
    for override, message in [
        ("decode.mbr.samples=-1", "decode.mbr.samples = -1 is out of range"),
        ("decode.mbr.utility=meteor", "must be one of bleu, chrf"),
        ("decode.mbr.sampels=4", "did you mean 'decode.mbr.samples'"),
    ]:
        with pytest.raises(UserError, match=message):
            load_recipe("shakespeare", [override])
    with pytest.raises(UserError, match=r"must be a \[decode.mbr\] table"):
        from_dict({"decode": {"mbr": 8}})
    old = to_dict(recipe)
    del old["decode"]["mbr"], old["decode"]["temperature"]  # a checkpoint's recipe from before these keys
    assert recipe_from_checkpoint({"recipe": old}).decode.mbr == MbrConfig()


def with_recipe_mbr(ckpt: Path, out: Path, **mbr) -> Path:
    """A copy of `ckpt` whose stored recipe sets [decode.mbr]."""
    payload = torch.load(ckpt, weights_only=True)
    payload["recipe"]["decode"]["mbr"] = {**payload["recipe"]["decode"].get("mbr", {}), **mbr}
    torch.save(payload, out)
    return out


def test_a_recipe_that_sets_mbr_decodes_by_mbr_unless_a_beam_or_sampling_is_asked(trained_mt, tmp_path):
    sources = ["a b c d", "e f", "h g h a b"]
    plain = textgen.load(trained_mt, device="cpu")
    mt = textgen.load(with_recipe_mbr(trained_mt, tmp_path / "mbr.pt", samples=4, seed=2, utility="chrf"), device="cpu")
    assert mt.recipe.decode.mbr == MbrConfig(samples=4, seed=2, utility="chrf")
    assert mt.translate(sources) == plain.translate(sources, mbr=4, mbr_utility="chrf", seed=2)
    assert mt.translate(sources, seed=3) == plain.translate(sources, mbr=4, mbr_utility="chrf", seed=3)
    assert mt.translate(sources, beam=3) == plain.translate(sources, beam=3)  # a beam asked for: search
    sampled = dict(sample=True, temperature=1.5, seed=4)
    assert mt.translate(sources, **sampled) == plain.translate(sources, **sampled)
    with pytest.raises(UserError, match="and --nbest"):
        mt.translate(sources, nbest=2)


def test_decode_eval_and_the_api_call_one_dispatch(cli, trained_mt, tmp_path, monkeypatch):
    from textgen.decode import dispatch

    calls = []
    real = dispatch.decode_sources

    def counted(model, decode_text, sources, cfg, *args, **kwargs):
        calls.append(cfg)
        return real(model, decode_text, sources, cfg, *args, **kwargs)

    monkeypatch.setattr(dispatch, "decode_sources", counted)
    (tmp_path / "src.txt").write_text("a b c d\ne f\n")
    assert cli("decode", trained_mt, "-i", "src.txt", "--beam", "2").code == 0
    assert calls[-1].beam == 2 and calls[-1].mbr.samples == 0
    assert cli("decode", trained_mt, "-i", "src.txt", "--mbr", "3", "--mbr-epsilon", "0.1").code == 0
    assert (calls[-1].mbr.samples, calls[-1].mbr.epsilon) == (3, 0.1)
    result = cli("eval", trained_mt, "--split", "test", "--mbr", "2", "--seed", "7", "--json")
    assert result.code == 0, result.err
    assert calls[-1].mbr == MbrConfig(samples=2, seed=7) and json.loads(result.out)["metrics"]["mbr_seed"] == 7
    textgen.load(trained_mt, device="cpu").translate(["a b"], beam=1)
    assert calls[-1].beam == 1


def test_mbr_options_default_to_the_recipe_in_cli_help(cli):
    help_text = cli("decode", "--help").out
    assert "decode.mbr.utility" in help_text and "decode.temperature" in help_text
