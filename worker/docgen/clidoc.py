"""The command reference (``docs/cli.md``), generated from the ``ims-worker`` argument parser.

``python -m worker.docgen.clidoc`` rewrites the section between the markers: every command, its description,
arguments and options with their help and defaults, read from ``worker.cli.build_parser`` (so a new command or
option is in the reference as soon as it exists); ``--check`` exits 1 if it is stale (``tests/test_docs.py``).
Rendered by hand rather than with argparse's own usage text, whose wrapping depends on the terminal and on the
Python version.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from worker.cli import build_parser
from worker.docgen import begin_marker, end_marker, replace_between
from worker.docgen import main as generate

COMMAND = "python -m worker.docgen.clidoc"
BEGIN = begin_marker("command-reference", COMMAND)
END = end_marker("command-reference")
PATH = "docs/cli.md"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def leaves(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command, as (words after ``ims-worker``, its parser), in the parser's order."""
    children = _subcommands(parser)
    if not children:
        yield words, parser
        return
    for name, child in children.items():
        yield from leaves(child, (*words, name))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    value = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
    return ", ".join(f"`{flag}{value}`" for flag in action.option_strings)


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS) or action.default == []:
        return ""
    return f"`{action.default}`"


def section(words: tuple[str, ...], parser: argparse.ArgumentParser) -> str:
    lines = [f"## `ims-worker {' '.join(words)}`", ""]
    about = parser.description or ""
    if about:
        lines += [_cell(about), ""]
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    if actions:
        lines += ["| argument | meaning | default |", "|---|---|---|"]
        for action in actions:
            text = "" if action.help in (None, argparse.SUPPRESS) else str(action.help)
            if action.choices and not isinstance(action, argparse._SubParsersAction):
                text += f" (one of: {', '.join(map(str, action.choices))})"
            text = text.replace("%(default)s", str(action.default))
            lines.append(f"| {_flags(action)} | {_cell(text)} | {_default(action)} |")
        lines.append("")
    return "\n".join(lines)


def reference() -> str:
    parser = build_parser()
    found = list(leaves(parser))
    index = ["| command | does |", "|---|---|"]
    for words, sub in found:
        index.append(
            f"| `ims-worker {' '.join(words)}` | {_cell(_summary(parser, words) or sub.description or '')} |"
        )
    return "\n".join(index) + "\n\n" + "\n".join(section(words, sub) for words, sub in found).rstrip()


def _summary(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> str:
    """The one-line ``help=`` a command was registered with."""
    current = parser
    summary = ""
    for word in words:
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                summary = next((str(c.help) for c in action._choices_actions if c.dest == word), "")
                current = action.choices[word]
                break
    return summary


def render(text: str) -> str:
    return replace_between(text, BEGIN, END, reference(), where=PATH)


def main(argv: list[str] | None = None) -> int:
    return generate(argv, prog=COMMAND, doc=__doc__, default_path=PATH, render=render)


if __name__ == "__main__":
    sys.exit(main())
