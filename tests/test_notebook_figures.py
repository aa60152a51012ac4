"""The notebooks, executed in their smoke setting, show the figures a reader must see.

Each notebook runs top to bottom once (a failing cell fails its test), in the notebooks folder as in
JupyterLab. Then its *outputs* are checked: a notebook that runs but shows nothing fails. A figure counts
when a reader sees it in JupyterLab *and* in a static copy (nbconvert HTML, the docs site):

* matplotlib: an inline ``image/png`` output that is not blank;
* plotly: the plotly mime type (JupyterLab) together with an HTML version that draws the figure with a
  ``Plotly.newPlot`` call, with plotly.js embedded once in the notebook (no kernel, no internet needed).

The executed copies are written to ``build/notebooks/`` (``MFIRRN_EXECUTED_NOTEBOOKS`` overrides), tagged
with a sha256 of the notebook's source and of the package's source files. A copy whose tag still matches is
checked again without running the notebook a second time: ``.ci/docs`` runs this test first and publishes
the copies, so in CI each notebook runs once and the docs site shows exactly what was checked.
``MFIRRN_RERUN_NOTEBOOKS=1`` always executes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
OUT_DIR = Path(os.environ.get("MFIRRN_EXECUTED_NOTEBOOKS", ROOT / "build" / "notebooks"))

# figures a reader must see, per notebook: (all figures, of which plotly). A notebook not listed here must
# show at least one figure.
REQUIRED = {
    "00_quickstart": (2, 0),      # landmarks + dense overlay, 3D point views
    "01_data_prep": (2, 0),       # teacher vs fitted landmarks, face profiling
    "02_training": (1, 0),        # training curves
    "03_benchmark": (5, 0),       # yaw bars, CED, per-landmark, worst gallery, dense heat map
    "04_visualization": (4, 2),   # 3D mesh, prediction vs GT (plotly); 3DMM coefficients; dense-alignment grid
    "05_paper_figures": (5, 0),   # dense alignment, reconstruction strip, NME-by-yaw table (two widths), CED
    "06_video": (3, 0),           # pose over time, nose-tip error raw vs smoothed, overlay frames
}
PLOTLY_JS = "plotly.js v"  # the banner at the top of the embedded library
# datasets a notebook needs: under $MFIRRN_DATASETS (as CI has them), or the copy `mfirrn data fetch NAME` left
# in the cache (with the originals for AFLW2000-3D). The notebooks fetch them themselves when they find neither
# (tests/test_notebook_data.py checks that); here, without either, the test skips like the other data tests
# rather than download, or fails under MFIRRN_REQUIRE_DATA=1.
_AFLW2000 = ("aflw2000-3d-dev", "aflw2000-3d")
NEEDS_DATA = {"01_data_prep": ("aflw-21pt-train", "aflw-train"), "03_benchmark": _AFLW2000,
              "04_visualization": _AFLW2000, "05_paper_figures": _AFLW2000}


def source_digest(nb) -> str:
    """sha256 of a notebook's cell sources and of the package's source files: what makes an executed copy
    stale."""
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    for f in sorted((ROOT / "mfirrn").rglob("*")):
        if f.suffix in (".py", ".yaml", ".pyx", ".cpp", ".h") and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def execute(path: Path, out_dir: Path = OUT_DIR):
    """Run ``path`` in its folder (as JupyterLab does) and write the executed copy to ``out_dir``."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    digest = source_digest(nb)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    nb.metadata.setdefault("mfirrn", {})["source_sha256"] = digest
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    return nb


def executed(path: Path, out_dir: Path = OUT_DIR):
    """The executed copy of ``path``: the stored one when its tag matches the current sources, else a new run."""
    import nbformat

    done = out_dir / path.name
    if done.is_file() and os.environ.get("MFIRRN_RERUN_NOTEBOOKS") != "1":
        nb = nbformat.read(done, as_version=4)
        if nb.metadata.get("mfirrn", {}).get("source_sha256") == source_digest(nbformat.read(path, as_version=4)):
            return nb
    return execute(path, out_dir)


def _png_is_blank(data: str) -> bool:
    import cv2

    img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_GRAYSCALE)
    return img is None or min(img.shape) < 20 or float(img.std()) < 2.0


def figures(nb) -> dict:
    """Count what a reader sees: matplotlib figures, plotly figures, plotly.js copies, blank images."""
    found = {"matplotlib": 0, "plotly": 0, "plotly_without_html": 0, "blank": 0, "plotly_js": 0, "cdn_scripts": 0}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            found["plotly_js"] += html.count(PLOTLY_JS)
            found["cdn_scripts"] += len(re.findall(r"<script[^>]*\bsrc=[\"']https?:", html))
            if "image/png" in data:
                found["matplotlib"] += 1
                found["blank"] += _png_is_blank(data["image/png"])
            if "application/vnd.plotly.v1+json" in data:
                if "Plotly.newPlot" in html:
                    found["plotly"] += 1
                else:
                    found["plotly_without_html"] += 1
    return found


def check(name: str, nb) -> list[str]:
    """Problems a reader would see in an executed notebook (empty when it is fine)."""
    total, plotly = REQUIRED.get(name, (1, 0))
    f = figures(nb)
    problems = []
    if f["matplotlib"] + f["plotly"] < total:
        problems.append(f"{name}: {f['matplotlib'] + f['plotly']} inline figure(s), a reader must see {total} ({f})")
    if f["plotly"] < plotly:
        problems.append(f"{name}: {f['plotly']} plotly figure(s) with a static HTML view, expected {plotly} ({f})")
    if f["plotly_without_html"]:
        problems.append(f"{name}: {f['plotly_without_html']} plotly figure(s) only as JSON: invisible in static copies "
                        '(set pio.renderers.default = "plotly_mimetype+notebook")')
    if f["plotly"] and f["plotly_js"] != 1:
        problems.append(f"{name}: plotly.js embedded {f['plotly_js']} times (once per notebook is needed and enough)")
    if f["cdn_scripts"]:
        problems.append(f"{name}: {f['cdn_scripts']} output(s) load scripts from the internet")
    if f["blank"]:
        problems.append(f"{name}: {f['blank']} blank image(s)")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_in_git_has_no_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them before committing " \
                      "(jupyter nbconvert --clear-output --inplace notebooks/*.ipynb)"
    assert not any("matplotlib.use(" in c.source for c in nb.cells), \
        f"{path.name}: matplotlib.use(...) hides the figures; use %matplotlib inline"


def test_every_notebook_declares_its_figures():
    assert {p.stem for p in NOTEBOOKS} >= set(REQUIRED), "REQUIRED names a notebook that no longer exists"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_its_figures(path):
    if path.stem in NEEDS_DATA:
        from conftest import need_dataset

        from mfirrn.io.fetch import fetched_root

        folder, fetch_name = NEEDS_DATA[path.stem]
        if fetched_root(fetch_name, with_originals=fetch_name == "aflw2000-3d") is None:
            need_dataset(folder)
    nb = executed(path)
    assert not check(path.stem, nb), "\n".join(check(path.stem, nb))


def test_checker_fails_a_notebook_that_shows_nothing():
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    silent = new_notebook(cells=[new_code_cell("fig.savefig('x.png')", outputs=[
        new_output("stream", name="stdout", text="saved\n")])])
    assert check("03_benchmark", silent)
    assert check("some_new_notebook", silent)
    png = base64.b64encode(_test_png()).decode()
    shown = new_notebook(cells=[new_code_cell("plt.show()", outputs=[
        new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})] * 5)])
    assert check("03_benchmark", shown) == []
    json_only = new_notebook(cells=[new_code_cell("fig", outputs=[
        new_output("execute_result", data={"application/vnd.plotly.v1+json": {"data": []}}, execution_count=1)])])
    assert any("only as JSON" in p for p in check("04_visualization", json_only))
    blank = base64.b64encode(_test_png(blank=True)).decode()
    blanks = new_notebook(cells=[new_code_cell("plt.show()", outputs=[
        new_output("display_data", data={"image/png": blank})] * 2)])
    assert any("blank" in p for p in check("00_quickstart", blanks))
    assert isinstance(nbformat.validate(shown), type(None))


def _test_png(blank: bool = False) -> bytes:
    import cv2

    img = np.full((60, 80, 3), 255, np.uint8)
    if not blank:
        cv2.circle(img, (40, 30), 20, (0, 0, 255), -1)
    return cv2.imencode(".png", img)[1].tobytes()
