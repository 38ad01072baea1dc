"""OpenAPI at /openapi.json covers every HTTP route, and /docs renders it offline in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import httpx
import pytest
from openapi_spec_validator import validate

from inferlab.server.app import Server
from inferlab.server.protocols import kserve_http, repository_http, tfaas
from inferlab.server.web import HttpContext


def test_openapi_documents_every_protocol_route(http: httpx.Client, live_server: tuple[Server, str]) -> None:
    doc = http.get("/openapi.json").json()
    validate(doc)  # a well-formed OpenAPI 3 document, not just JSON
    documented = {(path, method) for path, item in doc["paths"].items() for method in item if method != "parameters"}
    ctx = HttpContext(live_server[0].service, max_body_bytes=1)
    for route in [*kserve_http.routes(ctx), *repository_http.routes(ctx), *tfaas.routes(ctx)]:
        for method in route.methods or ():
            if method != "HEAD":
                path = re.sub(r":\w+}", "}", route.path)  # a {name:path} convertor is documented as {name}
                assert (path, method.lower()) in documented, (route.path, method)
    # TF Serving is one catch-all route in the app; its paths are documented verb by verb
    assert {"/v1/models/{model}", "/v1/models/{model}:predict", "/v1/models/{model}/metadata"} <= set(doc["paths"])


def test_docs_page_needs_no_network(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(src|href)=\"https?://", page.text)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium binary")
def test_docs_page_renders_in_headless_chromium(base_url: str) -> None:
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
         f"{base_url}/docs"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "Loading" not in dom
    assert "/v2/models/{model}/infer" in dom and "TF Serving REST" in dom and "TFaaS" in dom
