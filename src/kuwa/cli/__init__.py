"""``kuwa-cli``: one click group; every option can also come from a ``KUWA_*`` variable."""

from __future__ import annotations

import click

from kuwa import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kuwa-cli")
def main() -> None:
    """Kuwa: chat with many LLMs at once, served from your own GPUs."""


def _register() -> None:
    from kuwa.cli import (
        batch,
        bot,
        db,
        executor,
        feedback,
        gateway,
        group,
        kernel,
        model,
        room,
        stress,
        up,
        user,
        worker,
    )

    for module in (
        up,
        gateway,
        executor,
        kernel,
        worker,
        user,
        group,
        model,
        room,
        bot,
        feedback,
        batch,
        stress,
        db,
    ):
        main.add_command(module.command)


_register()
