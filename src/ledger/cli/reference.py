"""The CLI reference in docs/cli.md, generated from the commands' own --help so it cannot drift.

Regenerate with `python -m ledger.cli.reference > docs/cli.md`; a test fails when it is stale.
"""

from __future__ import annotations

import click


def render(group: click.Group) -> str:
    parts = [
        "# `ledger` command reference",
        "",
        "Generated from `--help`: `python -m ledger.cli.reference > docs/cli.md`.",
        "",
    ]
    with click.Context(group, info_name="ledger", terminal_width=100, help_option_names=["-h", "--help"]) as root:
        parts += ["## ledger", "", "```", group.get_help(root).rstrip(), "```", ""]
        parts += _commands(group, root, "ledger")
    return "\n".join(parts)


def _commands(group: click.Group, parent: click.Context, path: str) -> list[str]:
    """Each command's help, and each subcommand's after its group's."""
    parts: list[str] = []
    for name in group.list_commands(parent):
        command = group.get_command(parent, name)
        assert command is not None
        with click.Context(command, info_name=name, parent=parent, terminal_width=100) as ctx:
            parts += [f"## {path} {name}", "", "```", command.get_help(ctx).rstrip(), "```", ""]
            if isinstance(command, click.Group):
                parts += _commands(command, ctx, f"{path} {name}")
    return parts


if __name__ == "__main__":
    from . import cli

    print(render(cli), end="")
