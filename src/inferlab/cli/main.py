"""The `inferlab` command group and the one table from error to exit code."""

from __future__ import annotations

import sys

import click
import httpx

from inferlab import __version__
from inferlab.cli.bench import bench
from inferlab.cli.client import ServerError
from inferlab.cli.fn import deploy, fn
from inferlab.cli.infer import infer
from inferlab.cli.models import models
from inferlab.cli.perf import predict_cmd, profile, tune
from inferlab.cli.report import report
from inferlab.cli.scenario import experiment, scenario, sweep
from inferlab.cli.serve import serve
from inferlab.errors import InferlabError

EXIT_USAGE = 2
EXIT_SERVER_ERROR = 3
EXIT_UNREACHABLE = 4
EXIT_FAILED = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="inferlab")
def cli() -> None:
    """Serve ML models over HTTP and gRPC, and measure, model and tune the service under load."""


cli.add_command(serve)
cli.add_command(models)
cli.add_command(infer)
cli.add_command(bench)
cli.add_command(deploy)
cli.add_command(fn)
cli.add_command(profile)
cli.add_command(predict_cmd)
cli.add_command(tune)
cli.add_command(report)
cli.add_command(scenario)
cli.add_command(sweep)
cli.add_command(experiment)


def main() -> None:
    """Entry point: run the CLI, mapping known failures to exit codes and one-line messages.

    Exit codes: 0 ok, 1 failed, 2 usage error, 3 the server answered with an error,
    4 the server could not be reached.
    """
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except ServerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_SERVER_ERROR)
    except httpx.TransportError as exc:
        click.echo(f"error: cannot reach the server: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except InferlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
