"""Recipes and the corpus registry ship inside the package: found through importlib.resources, never
through the working directory, and present in a plain (non-editable) install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

from tests.conftest import REPO

DECOY_RECIPE = 'description = "DECOY from the working directory"\ntask = "lm"\n'


def make_unrelated_folder(folder: Path) -> Path:
    """A user's project folder with its own `recipes/` and a `data/` that has nothing to do with textgen."""
    (folder / "recipes").mkdir(parents=True)
    (folder / "recipes" / "shakespeare.toml").write_text(DECOY_RECIPE)
    (folder / "recipes" / "decoy.toml").write_text(DECOY_RECIPE)
    (folder / "data").mkdir()
    (folder / "data" / "registry.toml").write_text("this is [not a textgen registry\n")
    (folder / "data" / "train.csv").write_text("a,b\n1,2\n")
    return folder


def builtin_description(name: str) -> str:
    text = (resources.files("textgen") / "recipes" / f"{name}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["description"]


def test_working_directory_does_not_shadow_builtin_recipes_or_registry(cli, tmp_path):
    from textgen.config import load_recipe

    make_unrelated_folder(tmp_path)  # the cli fixture runs in tmp_path
    listed = cli("recipes")
    assert listed.code == 0, listed.err
    assert "ptb-small" in listed.out and "translate-multi30k" in listed.out and "DECOY" not in listed.out
    corpora = cli("data", "list")
    assert corpora.code == 0 and "Traceback" not in corpora.err, corpora.err
    assert "tinyshakespeare" in corpora.out and "multi30k" in corpora.out
    shakespeare = load_recipe("shakespeare")
    assert shakespeare.description == builtin_description("shakespeare")
    assert shakespeare.data.corpus == "tinyshakespeare"
    unknown = cli("train", "--recipe", "decoy")
    assert unknown.code == 2 and "available recipes are" in unknown.err and "decoy, " not in unknown.err


def test_own_recipe_by_path_extends_a_builtin(cli, tmp_path):
    from textgen.config import load_recipe

    make_unrelated_folder(tmp_path)
    (tmp_path / "my.toml").write_text('extends = "translate-multi30k"\ndescription = "mine"\n[train]\nlr = 0.0005\n')
    mine = load_recipe("./my.toml")
    base = load_recipe("translate-multi30k")
    assert (mine.name, mine.description, mine.train.lr) == ("my", "mine", 0.0005)
    assert mine.task == "seq2seq" and mine.model == base.model and mine.data == base.data
    assert load_recipe("my.toml") == mine and load_recipe(str(tmp_path / "my.toml")) == mine
    # through the CLI: the recipe loads (the run then stops at the --set check, before any data is fetched)
    result = cli("train", "--recipe", "./my.toml", "--set", "train.no_such_key=1")
    assert result.code == 2 and "unknown recipe key 'train.no_such_key'" in result.err, result.err
    missing = cli("train", "--recipe", "./nope.toml")
    assert missing.code == 2 and "recipe file 'nope.toml' does not exist" in missing.err, missing.err


def test_extends_paths_are_relative_to_the_recipe_file(cli, tmp_path):
    from textgen.config import load_recipe

    sub = tmp_path / "mine"
    sub.mkdir()
    (sub / "base.toml").write_text('extends = "shakespeare-tiny"\n[train]\nseed = 5\n')
    (sub / "child.toml").write_text('extends = "base.toml"\n[train]\nlr = 0.25\n')
    (sub / "plain").write_text('extends = "./base.toml"\n')  # an existing file without the suffix
    child = load_recipe("mine/child.toml")
    assert (child.name, child.train.seed, child.train.lr) == ("child", 5, 0.25)
    assert child.data == load_recipe("shakespeare-tiny").data
    assert load_recipe("mine/plain").train.seed == 5


# --- a real wheel, installed into a fresh venv, run from an unrelated folder -------------------------


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages")) or sorted(venv.glob("Lib/site-packages"))
    assert found, f"no site-packages under {venv}"
    return found[0]


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def test_wheel_installed_in_a_fresh_venv_runs_from_an_unrelated_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")

    def run(*cmd, cwd: Path) -> str:
        done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    # build from a copy of the sources, so the checkout gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "textgen", src / "textgen", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    run(*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, src, cwd=tmp_path)
    (wheel,) = wheels.glob("textgen-*.whl")

    # a fresh venv without textgen; the test venv's site-packages (torch, typer, ...) are reachable through a
    # plain .pth line, which does not run that folder's own .pth files (so not the editable install's finder)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "typer").is_dir())
    (_site_packages(venv) / "textgen_test_deps.pth").write_text(f"{deps}\n")
    run(*pip, "--python", _bin(venv, "python"), "install", "-q", "--no-deps", wheel, cwd=tmp_path)

    work = make_unrelated_folder(tmp_path / "elsewhere")
    probe = (
        "import textgen, textgen.config as c; print(textgen.__file__); r = c.load_recipe('mixer'); "
        "print(r.name, r.task, r.objective.name, r.data.corpus)"
    )
    installed, loaded = run(_bin(venv, "python"), "-c", probe, cwd=work).splitlines()
    assert not Path(installed).resolve().is_relative_to(REPO), installed
    assert Path(installed).resolve().is_relative_to(venv.resolve()), installed
    assert loaded == "mixer seq2seq mixer multi30k"
    recipes = run(_bin(venv, "textgen"), "recipes", cwd=work)
    assert "ptb-small" in recipes and "mixer" in recipes and "DECOY" not in recipes
    corpora = run(_bin(venv, "textgen"), "data", "list", cwd=work)
    assert "tinyshakespeare" in corpora and "iwslt14" in corpora


# --- the declared Python floor -----------------------------------------------------------------------

# standard-library modules younger than the oldest Python textgen could plausibly declare (3.8)
STDLIB_SINCE = {"graphlib": (3, 9), "zoneinfo": (3, 9), "tomllib": (3, 11)}


def imported_modules(package: Path) -> set[str]:
    """Top-level names of every module imported anywhere in `package` (at module level or inside functions)."""
    import ast

    names = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_requires_python_covers_every_stdlib_module_textgen_imports():
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    spec = SpecifierSet(project["requires-python"])
    floor = next(v for v in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14") if v in spec)  # oldest allowed
    floor_version = tuple(map(int, floor.split(".")))
    used = imported_modules(REPO / "textgen")
    assert "tomllib" in used and "torch" in used  # the scan sees real imports
    too_new = {m: v for m, v in STDLIB_SINCE.items() if m in used and v > floor_version}
    assert not too_new, f"requires-python allows {floor}, but textgen imports {too_new} (module: first Python)"
    classifiers = [c for c in project.get("classifiers", []) if c.startswith("Programming Language :: Python :: 3.")]
    listed = [tuple(map(int, c.rsplit(" ", 1)[1].split("."))) for c in classifiers]
    assert all(v >= floor_version for v in listed), f"classifiers list Pythons below the floor {floor}: {classifiers}"
