"""Every notebook's data step for a newcomer: ``$MFIRRN_DATASETS`` unset, an empty cache, and a mirror of the
canonical sources (as a user with the internet has them).

A notebook's data step is its ``parameters`` cell and its cells tagged ``data``; those run here on their own, in
a fresh namespace (so they must hold their own imports), against a small mirror built from the shared files
(:mod:`_mirrors`: a few AFLW2000-3D dev images with their photos and fits, a few crops of the AFLW training
pool). Each must find nothing, fetch what its notebook needs through ``mfirrn.io.fetch`` while saying what and
how big, and, run again, find that copy in the cache without fetching. The notebooks themselves run in
``test_notebook_figures.py`` with the datasets in place.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: the datasets a notebook's data step leaves in the cache (folder under <cache>/datasets)
FETCHES = {"01_data_prep": "aflw-21pt-train", "02_training": "aflw2000-3d", "03_benchmark": "aflw2000-3d",
           "04_visualization": "aflw2000-3d", "05_paper_figures": "aflw2000-3d"}


def data_step(path: Path) -> list[str]:
    """The sources of the ``parameters`` and ``data`` cells of a notebook, IPython magics left out."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and {"parameters", "data"} & set(c.metadata.get("tags", []))]
    return ["\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith("%")) for c in cells]


def run_step(path: Path) -> tuple[dict, str]:
    """Run a notebook's data step in its folder, as JupyterLab would; ``(namespace, printed text)``."""
    ns: dict = {"__name__": "__main__"}
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        with contextlib.redirect_stdout(out):
            for k, source in enumerate(data_step(path)):
                exec(compile(source, f"{path.name}[data cell {k}]", "exec"), ns)
    finally:
        os.chdir(cwd)
    return ns, out.getvalue()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_a_data_step(path):
    cells = data_step(path)
    assert len(cells) >= 2, f"{path.name}: tag its parameters cell `parameters` and the cells that get its data `data`"


@pytest.fixture(scope="module")
def canonical_mirror(tmp_path_factory):
    """A mirror of the canonical sources: the data of :mod:`_mirrors`, the assets of ``$MFIRRN_ASSET_MIRROR``."""
    from _mirrors import aflw2000_mirror, aflw_train_mirror, with_assets
    from conftest import missing_data, need_aflw2000, need_dataset

    from mfirrn.io import fetch as datafetch
    from mfirrn.io.assets import mirror_dir

    if mirror_dir() is None:
        missing_data("no asset mirror ($MFIRRN_ASSET_MIRROR) to build the newcomer's mirror from")
    root = tmp_path_factory.mktemp("mirror")
    packaged = datafetch.load_manifest()
    manifest = aflw2000_mirror(root, need_aflw2000(), packaged, n=6)
    faces = tuple(sorted(p.rsplit("/", 1)[1] for p in manifest if "/AFLW2000-3D_crop/" in p))[:3]
    manifest.update(aflw_train_mirror(root, need_dataset("aflw-21pt-train"), packaged, faces=faces))
    with_assets(root, mirror_dir())
    return root, manifest


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_data_step_fetches_for_a_newcomer_then_finds_the_cache(path, canonical_mirror, tmp_path, monkeypatch):
    from mfirrn.io import fetch as datafetch

    root, manifest = canonical_mirror
    monkeypatch.setattr(datafetch, "load_manifest", lambda path=None: manifest)
    for var in ("MFIRRN_DATASETS", "MFIRRN_AFLW2000", "MFIRRN_AFLW21"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MFIRRN_ASSET_MIRROR", str(root))
    cache = tmp_path / "cache"
    monkeypatch.setenv("MFIRRN_CACHE", str(cache))

    ns, printed = run_step(path)
    dataset = FETCHES.get(path.stem)
    if dataset is None:  # assets only (the sample photo): fetched through the asset cache
        assert not (cache / "datasets").exists() and any(cache.rglob("*.jpg")), printed
        return
    fetched = cache / "datasets" / dataset
    assert (fetched / datafetch.COMPLETE_MARKER).is_file(), printed
    said = re.search(r"fetching (\S+).*: (\d+) files, ([\d.]+) MB from the mirror", printed)
    assert said, f"{path.name} fetched without saying what and how big: {printed!r}"
    assert "fetched now" in printed
    again, printed = run_step(path)
    assert "fetching" not in printed and "the fetched copy" in printed, printed
    found = {k: v for k, v in again.items() if isinstance(v, Path) and str(v).startswith(str(cache))}
    assert found and all(v == fetched for v in found.values()), found
