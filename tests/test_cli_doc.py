"""docs/CLI.md lists every command and option exactly as `textgen CMD --help` gives them.

The part of docs/CLI.md below its marker line is rendered here from the commands' own help records (the
text `--help` prints), so adding, removing or re-wording an option without regenerating the doc fails.
The prose above the marker is written by hand and left alone. Regenerate with
`UPDATE_CLI_DOC=1 .venv/bin/python -m pytest tests/test_cli_doc.py`.
"""

from __future__ import annotations

import os
import re

import typer.main

from tests.conftest import REPO
from textgen.cli import app

DOC = REPO / "docs" / "CLI.md"
MARKER = "<!-- generated from `textgen CMD --help` by tests/test_cli_doc.py: edit the commands, not this part -->"
UPDATE = bool(os.environ.get("UPDATE_CLI_DOC"))
# "Example: textgen ...", "MBR: textgen ...": a label, then a command to show as code
LABELLED_COMMAND = re.compile(r"(?P<label>[A-Z][\w -]*): (?P<cmd>(?:textgen|echo|TEXTGEN_)\S* .*)", re.S)


def commands(group=None, path=("textgen",)):
    """(path, click command) for every leaf command, depth first in the order `--help` lists them."""
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if getattr(cmd, "commands", None):
            yield from commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def _escape(text: str) -> str:
    """Markdown-safe table cell: `|` escaped, `<...>` outside code spans shown literally, one line."""
    parts = text.replace("\\[", "[").replace("|", "\\|").split("`")
    parts[::2] = [p.replace("<", "&lt;").replace(">", "&gt;") for p in parts[::2]]
    return " ".join("`".join(parts).split())


def _help_markdown(text: str) -> str:
    """A command's help: prose paragraphs as they are, command lines as code blocks (adjacent ones merged)."""
    blocks: list[list[str]] = []  # ["text", paragraph] or ["code", line, line, ...]
    for para in (p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()):
        stripped = " ".join(para.split())
        if m := LABELLED_COMMAND.fullmatch(para.strip()):
            blocks.append(["text", f"{m['label']}:"])
            stripped, para = m["cmd"], " " + m["cmd"]
        if para.startswith(" ") or stripped.startswith("textgen "):
            cmd, _, note = para.strip().partition("  ")  # "textgen ... --nproc 2  (or: torchrun ...)"
            if blocks and blocks[-1][0] == "code":
                blocks[-1].append(cmd)
            else:
                blocks.append(["code", cmd])
            if note:
                blocks.append(["text", " ".join(note.split())])
        else:
            blocks.append(["text", stripped])
    return "\n\n".join(b[1] if b[0] == "text" else "```bash\n" + "\n".join(b[1:]) + "\n```" for b in blocks)


def render_command(path: tuple[str, ...], cmd) -> str:
    ctx = cmd.context_class(cmd, info_name=path[-1])
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    args = " ".join(
        (p.name.upper() if p.required else f"[{p.name.upper()}]") + ("..." if p.nargs == -1 else "")
        for p in params
        if p.param_type_name == "argument"
    )
    rows = []
    for param in params:
        names, meaning = param.get_help_record(ctx) or (param.name, "")
        if param.param_type_name == "argument":
            names = param.name.upper() + names[len(param.name) :]
        rows.append(f"| `{names}` | {_escape(meaning)} |")
    usage = " ".join(filter(None, (" ".join(path), "[OPTIONS]", args)))
    return (
        f"## `{' '.join(path)}`\n\n```\n{usage}\n```\n\n{_help_markdown(cmd.help or '')}\n\n"
        "| argument / option | meaning |\n|---|---|\n" + "\n".join(rows) + "\n"
    )


def render() -> str:
    """The generated part: an index of the commands, then one section per command."""
    every = list(commands())
    index = [
        f"| [`{' '.join(p)}`](#{'-'.join(p)}) | {_escape((c.help or '').strip().split(chr(10))[0])} |" for p, c in every
    ]
    sections = [render_command(p, c) for p, c in every]
    return "\n".join(
        [MARKER, "", "| command | what it does |", "|---|---|", *index, "", "\n".join(sections).rstrip(), ""]
    )


def test_cli_doc_lists_every_command_and_option_as_help_gives_them():
    text = DOC.read_text() if DOC.exists() else ""
    head, found, _ = text.partition(MARKER)
    if UPDATE:
        DOC.write_text((head if found else text.rstrip() + "\n\n") + render())
        text = DOC.read_text()
    assert MARKER in text, f"docs/CLI.md has no marker line: add {MARKER!r} and regenerate (see this file's doc)"
    assert text.partition(MARKER)[1] + text.partition(MARKER)[2] == render(), (
        "docs/CLI.md is stale: regenerate it with UPDATE_CLI_DOC=1 .venv/bin/python -m pytest tests/test_cli_doc.py"
    )


def test_render_names_every_option_of_every_command():
    """The renderer itself drops nothing: each visible option's long name appears in its command's section."""
    for path, cmd in commands():
        section = render_command(path, cmd)
        for param in cmd.params:
            if param.param_type_name == "option" and not param.hidden:
                assert all(opt in section for opt in param.opts), (path, param.opts)
