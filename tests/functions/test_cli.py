"""`inferlab deploy -f stack.yml` and `inferlab fn ...` against a live server."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner

from inferlab.cli.client import ServerError
from inferlab.cli.main import cli
from inferlab.server.app import Server
from tests.functions.conftest import TOKEN, write_function
from tests.functions.test_invoke import ECHO


def test_stack_deploy_and_fn_commands(fn_server: tuple[Server, str], tmp_path: Path) -> None:
    url = fn_server[1]
    write_function(tmp_path / "echo-cli", ECHO, max_instances=1)
    (tmp_path / "stack.yml").write_text(
        f"version: 1.0\nprovider: {{name: inferlab, gateway: {url}}}\n"
        "functions:\n  echo-cli:\n    lang: python3\n    handler: ./echo-cli\n"
        "    labels: {com.openfaas.scale.max: '2'}\n"
    )
    runner = CliRunner()
    auth = ["--token", TOKEN]
    deployed = runner.invoke(cli, ["deploy", "-f", str(tmp_path / "stack.yml"), *auth])
    assert deployed.exit_code == 0, deployed.output
    assert f"deployed echo-cli: {url}/function/echo-cli" in deployed.output

    server = ["--url", url, *auth]
    invoked = runner.invoke(cli, ["fn", "invoke", "echo-cli", *server], input=b"abc")
    assert invoked.exit_code == 0 and invoked.stdout.startswith("cba")
    listed = runner.invoke(cli, ["fn", "list", *server])
    assert listed.exit_code == 0 and "echo-cli" in listed.output
    logs = runner.invoke(cli, ["fn", "logs", "echo-cli", "--tail", "5", *server])
    assert logs.exit_code == 0 and "echo 3" in logs.output
    assert runner.invoke(cli, ["fn", "scale", "echo-cli", "2", *server]).exit_code == 0
    status = httpx.get(f"{url}/system/function/echo-cli", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert status["config"]["max_instances"] == 2  # the stack's OpenFaaS label won over function.yaml

    assert runner.invoke(cli, ["fn", "rm", "echo-cli", *server]).exit_code == 0
    gone = runner.invoke(cli, ["fn", "invoke", "echo-cli", *server], input=b"abc")
    assert isinstance(gone.exception, ServerError) and "not deployed" in str(gone.exception)


def test_fn_deploy_folder_uses_the_spec_name(fn_server: tuple[Server, str], tmp_path: Path) -> None:
    folder = write_function(tmp_path / "some-folder", ECHO)
    (folder / "function.yaml").write_text("name: named-in-yaml\n")
    result = CliRunner().invoke(cli, ["fn", "deploy", str(folder), "--url", fn_server[1], "--token", TOKEN])
    assert result.exit_code == 0 and "deployed named-in-yaml" in result.output
    unauthorized = CliRunner().invoke(cli, ["fn", "rm", "named-in-yaml", "--url", fn_server[1]])
    assert isinstance(unauthorized.exception, ServerError) and "401" in str(unauthorized.exception)
