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
        for name in group.list_commands(root):
            command = group.get_command(root, name)
            assert command is not None
            with click.Context(command, info_name=name, parent=root, terminal_width=100) as ctx:
                parts += [f"## ledger {name}", "", "```", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    from . import cli

    print(render(cli), end="")
