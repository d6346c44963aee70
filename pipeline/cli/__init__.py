"""The `drydock` command: the only place that exits, configures logging or prints.

Each command lives in its own module under pipeline/cli/ and is registered on `main`
below. Errors from the stages become exit codes here and nowhere else:
0 ok, 1 gate failed, 2 bad input or configuration, 3 tool or infrastructure failure.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from pipeline import __version__
from pipeline.errors import DrydockError, InputError

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("pipeline")


def configure_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Milestones (target started, built, scanned, published) are always shown.
    logging.getLogger("drydock.progress").setLevel(min(level, logging.INFO))


def is_interactive() -> bool:
    """Progress bars on a terminal, plain log lines in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def exits(func: Callable[P, R]) -> Callable[P, R]:
    """Turn Drydock errors into their exit codes with a clear message on stderr."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except InputError as err:
            click.echo(f"drydock: error: bad input ({len(err.problems)} problem(s)):", err=True)
            for problem in err.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(err.exit_code)
        except DrydockError as err:
            click.echo(f"drydock: error: {err}", err=True)
            sys.exit(err.exit_code)

    return wrapper


class BadParameterExit2(click.Group):
    """click already exits 2 on usage errors; keep that contract explicit."""


@click.group(cls=BadParameterExit2, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drydock")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Build, harden, scan, gate and publish PostgreSQL operator and operand images."""
    configure_logging(verbose)


def _register() -> None:
    from pipeline.cli import build_cmds

    build_cmds.register(main)
    from pipeline.cli import scan_cmd

    scan_cmd.register(main)
    from pipeline.cli import run_cmd

    run_cmd.register(main)
    from pipeline.cli import verify

    verify.register(main)
    from pipeline.cli import trivydb

    trivydb.register(main)
    from pipeline.cli import dev, dev_clair, dev_loop

    dev.register(main)
    dev_loop.register(main)
    dev_clair.register(main)
    from pipeline.cli import catalog

    catalog.register(main)


_register()
