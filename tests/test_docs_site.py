"""The built documentation site, opened in headless Chromium: tutorial pages show their figures.

Needs the site (``bash .ci/docs`` builds it into ``site/``; ``MFIRRN_DOCS_SITE`` points elsewhere) and
Debian's ``chromium``. Without either the tests skip, unless ``MFIRRN_REQUIRE_BROWSER=1`` (set by
``.ci/run``, which builds the site before the tests), which makes that a failure.

The site is copied to a temporary folder and served over HTTP on the loopback interface; a probe script is
added to the page: once the page has loaded and its scripts have run, the probe writes the drawn size of
every notebook image and plotly figure, and any script error, into the DOM, which ``chromium --dump-dom``
returns. The browser runs offline: a figure that needs the internet stays empty and fails.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("MFIRRN_DOCS_SITE", ROOT / "site"))
REQUIRE = os.environ.get("MFIRRN_REQUIRE_BROWSER") == "1"

PROBE = """
<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var r = {images: [], plots: [], errors: window.__probeErrors || []};
    document.querySelectorAll(".jp-RenderedImage img").forEach(function (im) {
      var b = im.getBoundingClientRect();
      r.images.push({natural: [im.naturalWidth, im.naturalHeight], shown: [b.width, b.height]});
    });
    document.querySelectorAll(".plotly-graph-div").forEach(function (d) {
      var b = d.getBoundingClientRect();
      var gl = d.querySelector(".gl-container canvas");
      r.plots.push({shown: [b.width, b.height], svg: d.querySelectorAll(".main-svg").length,
                    canvas: gl ? [gl.width, gl.height] : null, traces: (d.data || []).length});
    });
    var pre = document.createElement("pre");
    pre.id = "mfirrn-probe";
    pre.textContent = JSON.stringify(r);
    document.body.appendChild(pre);
  }, 4000);
});
</script>
"""
ERRORS = '<script>window.__probeErrors = []; window.addEventListener("error", function (e) ' \
         '{ window.__probeErrors.push(String(e.message)); });</script>'


def _need(what: str, ok: bool) -> None:
    if not ok:
        if REQUIRE:
            pytest.fail(f"{what} (MFIRRN_REQUIRE_BROWSER=1)")
        pytest.skip(what)


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    _need("chromium is not installed (apt-get install -y chromium)", exe is not None)
    return exe


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(folder, base URL) of a copy of the built site served over HTTP on 127.0.0.1."""
    _need(f"the docs site is not built at {SITE} (bash .ci/docs)", (SITE / "index.html").is_file())
    copy = tmp_path_factory.mktemp("site") / "site"
    shutil.copytree(SITE, copy)
    handler = functools.partial(_QuietHandler, directory=str(copy))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield copy, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102
        pass


def probe(chromium: str, site, page: Path, tmp_path: Path) -> dict:
    """Load ``page`` (a file of the served ``site``) offline in headless Chromium; what the probe measured."""
    folder, url = site
    html = page.read_text(encoding="utf-8")
    html = html.replace("<head>", "<head>" + ERRORS, 1).replace("</body>", PROBE + "</body>", 1)
    probed = page.with_name("probe.html")
    probed.write_text(html, encoding="utf-8")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",  # offline: only the local server
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000", "--virtual-time-budget=30000",
            "--dump-dom", url + probed.relative_to(folder).as_posix()]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    m = re.search(r'<pre id="mfirrn-probe">(.*?)</pre>', run.stdout, re.S)
    assert m, "the probe did not report: the page's scripts did not finish loading\n" + run.stderr[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _tutorial(site, stem: str) -> Path:
    page = site[0] / "tutorials" / stem / "index.html"
    assert page.is_file(), f"no tutorial page tutorials/{stem}/: .ci/docs publishes every notebook"
    return page


@pytest.mark.slow
def test_visualization_tutorial_draws_its_images_and_3d_views(chromium, site, tmp_path):
    r = probe(chromium, site, _tutorial(site, "04_visualization"), tmp_path)
    assert len(r["images"]) >= 2, r
    for im in r["images"]:
        assert min(im["natural"]) > 0 and min(im["shown"]) > 50, f"an image is not drawn: {r}"
    assert len(r["plots"]) >= 2, f"plotly figures missing from the page: {r}"
    for p in r["plots"]:
        assert min(p["shown"]) > 200 and p["svg"] >= 1 and p["traces"] >= 1, f"a plotly figure is not drawn: {r}"
        assert p["canvas"] and min(p["canvas"]) > 0, f"a 3D scene has no WebGL canvas: {r}"
    assert not r["errors"], r["errors"]


@pytest.mark.slow
def test_benchmark_tutorial_draws_its_figures(chromium, site, tmp_path):
    r = probe(chromium, site, _tutorial(site, "03_benchmark"), tmp_path)
    assert len(r["images"]) >= 5, r
    assert all(min(im["natural"]) > 0 and min(im["shown"]) > 50 for im in r["images"]), r


def test_every_notebook_is_a_tutorial_page(site):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        _tutorial(site, nb.stem)
    cli = (site[0] / "cli" / "index.html").read_text(encoding="utf-8")
    assert "mfirrn reconstruct" in cli and "--outputs" in cli, "the CLI reference was not generated"


def test_readme_is_for_users_and_its_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in first_block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and "pip install" in commands[0] and "mfirrn reconstruct" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().splitlines()[-1] == commands[1], ".ci/run must end with README's test command"
    assert len(readme.splitlines()) < 200
    assert not re.search(r"machine [AB]\b|\bsession|REFERENCE §", readme), "lab-log wording in the README"
    cuda = re.search(r"--index-url (\S+)", readme)
    assert cuda and re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d{3}", cuda.group(1)), "CUDA index URL"
