"""`inferlab infer MODEL --data FILE|-`: send one inference request to a running server and show it."""

from __future__ import annotations

import sys
from typing import Any

import click
import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from inferlab.cli.client import call, make_client, server_options
from inferlab.errors import InvalidInput
from inferlab.tensors import v2_dtype


@click.command()
@click.argument("model")
@click.option("--data", "data_file", required=True, type=click.File("rb"),
              help="JSON input, '-' for stdin: a V2 body ({'inputs': [{name, shape, datatype, data}]}), "
                   "{input_name: array}, {'instances': array}, or a bare (nested) array for a one-input model.")
@click.option("--version", "version", type=click.IntRange(1), default=None, help="Model version (default: latest).")
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(1), help="Classes to show per row.")
@click.option("--raw", is_flag=True, help="Print the server's V2 JSON response instead of a table.")
@server_options
def infer(
    model: str, data_file: Any, version: int | None, top_k: int, raw: bool, url: str, token: str | None,
    insecure: bool,
) -> None:
    """Run MODEL on the inputs in --data and print the top classes (with labels) per row."""
    try:
        doc = orjson.loads(data_file.read())
    except orjson.JSONDecodeError as exc:
        raise click.UsageError(f"--data is not valid JSON: {exc}") from None
    base = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    with make_client(url, token, insecure) as client:
        metadata = call(client, "GET", base)
        body = build_request(doc, metadata)
        classify = [] if raw else [o for o in metadata["outputs"] if len(o["shape"]) == 2 and o["datatype"][0] in "FIU"]
        if classify:
            body["outputs"] = [{"name": o["name"], "parameters": {"classification": top_k}} for o in classify]
        reply = call(client, "POST", f"{base}/infer", content=orjson.dumps(body),
                     headers={"Content-Type": "application/json"})
    if not classify:
        sys.stdout.write(orjson.dumps(reply, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console = Console()
    for output in reply["outputs"]:
        table = Table("row", "class", "label", "score", title=f"{reply['model_name']} v{reply['model_version']}: "
                      f"{output['name']} (top {top_k})")
        rows = np.asarray(output["data"], dtype=object).reshape(output["shape"])
        for r, row in enumerate(rows):
            for rank, entry in enumerate(row):
                score, index, label = [*str(entry).split(":", 2), ""][:3]
                table.add_row(str(r) if rank == 0 else "", index, label, f"{float(score):.4f}")
        console.print(table)


def build_request(doc: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """Turn any of the accepted input shapes into a V2 request body, using the model's metadata."""
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        return {k: v for k, v in doc.items() if k in ("id", "inputs", "outputs", "parameters")}
    specs = {s["name"]: s for s in metadata["inputs"]}
    if isinstance(doc, dict) and ("inputs" in doc or "instances" in doc):
        named = {doc.get("input_name") or _only(specs): doc.get("inputs", doc.get("instances"))}
    elif isinstance(doc, dict):
        named = doc
    else:
        named = {_only(specs): doc}
    tensors = []
    for name, data in named.items():
        if name not in specs:
            raise InvalidInput(f"model has no input '{name}'; its inputs are {sorted(specs)}")
        array = np.asarray(data, dtype=v2_dtype(specs[name]["datatype"]))
        tensors.append({"name": name, "datatype": specs[name]["datatype"], "shape": list(array.shape),
                        "data": array.reshape(-1).tolist()})
    return {"inputs": tensors}


def _only(specs: dict[str, Any]) -> str:
    if len(specs) != 1:
        raise InvalidInput(f"the model has inputs {sorted(specs)}: name them, e.g. {{\"{next(iter(specs))}\": [...]}}")
    return next(iter(specs))
