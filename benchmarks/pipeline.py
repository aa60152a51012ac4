"""The main job end to end: time per stage, images/s of ``mfirrn reconstruct``, accuracy per detector and refinement.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/pipeline.py [--n 40] [--sections speed,cli,accuracy]

Photo sets: ``450x450`` = the first ``--n`` AFLW2000-3D originals of the dev split
(``$MFIRRN_DATASETS/aflw2000-3d-dev/test.data/AFLW2000-3D``), ``faces-68`` = every photo of
``$MFIRRN_DATASETS/faces-68`` (several with many faces), ``720p`` = the first 20 of those dev-split
photos (one face each) scaled to 720 pixels high and centred on a 1280x720 grey canvas.

1. **speed**: median milliseconds per image for each stage (decode, detect, network, refine, landmarks,
   dense, then building each output file in memory, and publishing the default ones to disk) with the
   PyTorch and ONNX Runtime backends (``--threads``, default 0 as in the CLI: the threading policy's budget),
   timed round-robin (every configuration sees each image in turn, so a slow phase of a shared machine hits all
   alike). ``dense`` is the first read of the faces' meshes (computed then, for all faces of the image).
2. **cli**: ``mfirrn reconstruct FOLDER`` in a subprocess with default outputs, with the default backend
   (``auto``: ONNX Runtime on a CPU) and with ``--backend torch``, interleaved over three rounds; the
   images/s the command prints (its loop over the images, reading and writing included, start-up not
   counted) and the whole command's time.
3. **accuracy**: on all dev-split originals and the faces-68 photos, per detector: faces found (GT
   faces with a detection whose centre lies in the GT landmarks' box), extra boxes (detections matched to
   no GT face: false positives, or real faces left unannotated), and 68-point NME (%, GT box normaliser)
   with single pass, 3DDFA's two-step (``always``), the former robust rule (the two-step behind the roi
   test), the mean of the first two passes (no extra network run) and the robust refinement (mean of
   three passes behind the roi test), on the faces every detector finds, and on all the faces each one
   finds; ``>1.5x`` counts faces whose NME is over 1.5 times their single-pass NME, ``max ratio`` is the
   largest such ratio. FaceBoxes runs in ONNX Runtime here (the same boxes as PyTorch within 1e-4 pixels).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# isort: off
import mfirrn  # noqa: F401  (before torch: importing mfirrn sets the OpenMP wait policy before OpenMP loads)
# isort: on
import cv2
import numpy as np
import torch

from mfirrn import models
from mfirrn.cli.outputs import DEFAULT_OUTPUTS, OutputContext, available_outputs, build_outputs
from mfirrn.detect.registry import create_detector
from mfirrn.evaluation.metrics import nme
from mfirrn.geometry.crop import roi_from_box, roi_from_landmarks
from mfirrn.inference.pipeline import Reconstructor, StageTimes, average_passes, read_image, refined_roi_agrees
from mfirrn.io.fileio import StagedOutputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos68 import load_annotations, match  # noqa: E402


def photo_sets(datasets: Path, n: int) -> dict[str, list[Path]]:
    dev = sorted((datasets / "aflw2000-3d-dev" / "test.data" / "AFLW2000-3D").glob("*.jpg"))[:n]
    f68 = [p for p, _, _ in load_annotations(datasets / "faces-68")]
    return {"450x450": dev, "faces-68": f68}


def to_720p(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to 720 pixels high, centred on a 1280x720 grey canvas (cropped if wider)."""
    h, w = image.shape[:2]
    s = 720 / h
    img = cv2.resize(image, (round(w * s), 720), interpolation=cv2.INTER_AREA)[:, :1280]
    canvas = np.full((720, 1280, 3), 127, np.uint8)
    x0 = (1280 - img.shape[1]) // 2
    canvas[:, x0:x0 + img.shape[1]] = img
    return canvas


def make_720p(paths: list[Path], tmp: Path) -> list[Path]:
    """Write :func:`to_720p` versions of ``paths`` as JPEG files under ``tmp/720p``."""
    (tmp / "720p").mkdir(exist_ok=True)
    out = []
    for p in paths:
        out.append(tmp / "720p" / f"{p.stem}.jpg")
        cv2.imwrite(str(out[-1]), to_720p(read_image(p)))
    return out


def speed(sets: dict[str, list[Path]], model_name: str, tmp: Path, threads: int, tddfa_v2: str | None = None) -> None:
    from mfirrn.cli.common import model_from_args

    v2 = {}
    if tddfa_v2:
        import tddfa_v2 as v2mod

        v2 = {f"3DDFA_V2 {m}": v2mod.load(tddfa_v2, onnx=m == "ONNX") for m in ("PyTorch", "ONNX")}
        for run in v2.values():
            run(cv2.imread(str(next(iter(sets.values()))[0])))  # warm-up (and first-use ONNX export)
    v2_ms: dict[str, dict[str, list[float]]] = {s: {k: [] for k in v2} for s in sets}
    pipe_ms: dict[str, dict[str, list[float]]] = {s: {"torch": [], "onnxruntime": []} for s in sets}

    backends = ["torch", "onnxruntime"]
    recs = {}
    for b in backends:
        ns = argparse.Namespace(model=model_name, checkpoint=None, device="cpu", bf16=False, backend=b, threads=threads)
        recs[b] = Reconstructor(model_from_args(ns, model_name), backend=b, threads=threads or None)
    defaults = DEFAULT_OUTPUTS.split(",")
    print(f"\n## Time per image by stage (median ms; model {model_name}; default detector and refinement)")
    images = {}
    for name, paths in sets.items():
        images[name] = [(p, p.read_bytes()) for p in paths]
    stages = ["decode", "detect", "network", "landmarks", "refine", "dense"] + \
        [f"build {o}" for o in available_outputs()] + ["publish defaults", "total default"]
    rows = {}
    for set_name, items in images.items():
        times = {b: {s: [] for s in stages} for b in backends}
        for k, (path, data) in enumerate(items):
            for name in (list(v2) if k % 2 == 0 else list(v2)[::-1]):
                t0 = time.perf_counter()
                v2[name](cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
                v2_ms[set_name][name].append((time.perf_counter() - t0) * 1000)
            for b in (backends if k % 2 == 0 else backends[::-1]):
                st = StageTimes()
                with st("decode"):
                    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                faces = recs[b](img, times=st)
                with st("dense"):
                    [f.vertices for f in faces]  # computed at the first read
                pipe_ms[set_name][b].append(sum(st.seconds.get(s, 0.0) for s in stages[:6]) * 1000)
                if not faces:
                    continue
                ctx = OutputContext(img, path, faces, model_name, path.stem)
                for o in available_outputs():
                    with st(f"build {o}"):
                        build_outputs(ctx, [o])
                with st("publish defaults"):
                    with StagedOutputs() as out:
                        for fname, blob in build_outputs(ctx, defaults):
                            out.add(tmp / "out" / fname, blob)
                for s in stages[:-1]:
                    times[b][s].append(st.seconds.get(s, 0.0) * 1000)
                pipeline = sum(st.seconds.get(s, 0.0) for s in stages[:6])
                times[b]["total default"].append((pipeline + st.seconds["publish defaults"]) * 1000)
        rows[set_name] = {b: {s: float(np.median(v)) if v else float("nan") for s, v in times[b].items()} for b in backends}
    cols = [(s, b) for s in images for b in backends]
    print("| stage | " + " | ".join(f"{s} {'torch' if b == 'torch' else 'ORT'}" for s, b in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for stage in stages:
        print(f"| {stage} | " + " | ".join(f"{rows[s][b][stage]:.1f}" for s, b in cols) + " |")
    print("(`publish defaults` builds and writes the default outputs "
          f"({DEFAULT_OUTPUTS}); `total default` = decode..dense + publish, one image at a time, no overlap)")
    if v2:
        print("\n## Side by side with 3DDFA_V2 (median ms per image, no files; same images, interleaved)")
        print("| pipeline | " + " | ".join(images) + " |")
        print("|---|" + "---:|" * len(images))
        for b in backends:
            print(f"| this project, {'PyTorch' if b == 'torch' else 'ONNX Runtime'} (decode..dense) | " + " | ".join(
                f"{np.median(pipe_ms[s][b]):.1f}" for s in images) + " |")
        for name in v2:
            print(f"| {name} (decode..dense) | " + " | ".join(f"{np.median(v2_ms[s][name]):.1f}" for s in images) + " |")
        print("(3DDFA_V2: FaceBoxes, mb05, its two-step refinement for every face and its dense mesh of 38,365 "
              "vertices, one thread, via benchmarks/tddfa_v2.py; this project: the defaults, FaceBoxes, the robust "
              "refinement and the full 53,215-vertex mesh)")


def cli(sets: dict[str, list[Path]], tmp: Path, extra: list[str], rounds: int = 3) -> None:
    import re

    print(f"\n## `mfirrn reconstruct FOLDER` (default outputs; median of {rounds} interleaved rounds)")
    print("| photos | args | n | s (whole command) | images/s (as printed) | ms per image |")
    print("|---|---|---:|---:|---:|---:|")
    exe = [sys.executable, "-m", "mfirrn.cli"]
    configs = ([], ["--backend", "torch"])
    for set_name, paths in sets.items():
        folder = tmp / f"cli-{set_name}"
        folder.mkdir(exist_ok=True)
        for p in paths:
            shutil.copy(p, folder / p.name)
        wall: dict[int, list[float]] = {i: [] for i in range(len(configs))}
        rate: dict[int, list[float]] = {i: [] for i in range(len(configs))}
        for r in range(rounds):
            order = range(len(configs)) if r % 2 == 0 else reversed(range(len(configs)))
            for i in order:
                shutil.rmtree(tmp / "cli-out", ignore_errors=True)  # each run into a fresh folder (another run is refused)
                t0 = time.perf_counter()
                done = subprocess.run(exe + ["reconstruct", str(folder), "-o", str(tmp / "cli-out")] + configs[i] + extra,
                                      check=True, capture_output=True, text=True, cwd=tmp)
                wall[i].append(time.perf_counter() - t0)
                m = re.search(r"([0-9.]+) images/s", done.stdout)
                rate[i].append(float(m.group(1)) if m else float("nan"))
        for i, args in enumerate(configs):
            ips = float(np.median(rate[i]))
            print(f"| {set_name} | {' '.join(args) or 'defaults (auto: ONNX Runtime)'} | {len(paths)} | "
                  f"{np.median(wall[i]):.1f} | {ips:.1f} | {1000 / ips:.1f} |")
    print("(images/s is the command's own count over its loop, start-up not counted; ms per image = 1000 / it)")


MODES = ("off", "always", "roi test, 2 passes", "mean of 2 passes", "robust (mean of 3)")


def refinement_passes(rec: Reconstructor, img: np.ndarray, boxes: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Landmarks (F, 68, 3) of the single pass, 3DDFA's two-step, the mean of those two passes and the
    robust refinement's mean of three passes (as :class:`Reconstructor` computes it), and the robust
    refinement's roi test (F,) bool (the faces where it keeps a refined result)."""
    conv = rec.model.card.convention
    rois, params = [roi_from_box(boxes[:, :4])], []
    for _ in range(3):
        params.append(rec._predict(img, rois[-1]))
        lm = rec._landmarks(params[-1], rois[-1]).numpy()
        rois.append(roi_from_landmarks(lm[..., :2]))
    lms = [rec._landmarks(params[k], rois[k]).numpy() for k in range(2)]
    for k in (2, 3):
        mean = average_passes(params[:k], rois[:k], rois[1], conv).to(params[0].dtype)
        lms.append(rec._landmarks(mean, rois[1]).numpy())
    return lms, refined_roi_agrees(rois[0], rois[1], rois[2])


def accuracy(datasets: Path, model_name: str, detectors: list[str]) -> None:
    from mfirrn.evaluation.benchmark import AFLW2000

    data = AFLW2000.load(datasets / "aflw2000-3d-dev")
    items = [(data.root / "AFLW2000-3D" / name, data.gt[i][None]) for i, name in enumerate(data.names)]
    sets = {"dev-split originals": items,
            "faces-68": [(p, g) for p, g, _ in load_annotations(datasets / "faces-68")]}
    rec = Reconstructor(models.create(model_name), detector=detectors[0], refine="off", dense=False)
    bases = sorted({b for d in detectors for b in d.split(",")})
    # FaceBoxes in ONNX Runtime: the same boxes as PyTorch (within 1e-4 px), faster
    dets = {b: create_detector(b, backend="onnxruntime" if b == "faceboxes" else "torch", threads=1) for b in bases}
    print(f"\n## Accuracy (68-point NME %, GT box normaliser; model {model_name})")
    for set_name, its in sets.items():
        n_gt = sum(len(g) for _, g in its)
        res: dict[str, dict] = {d: {"found": {}, "extra": 0, "ms": []} for d in detectors}
        for k, (path, gt) in enumerate(its):
            img = read_image(path)
            found, ms = {}, {}
            for b, det in dets.items():
                t0 = time.perf_counter()
                found[b] = det(img)
                ms[b] = (time.perf_counter() - t0) * 1000
            cache: dict[bytes, tuple] = {}
            for d in detectors:
                chain = d.split(",")
                used = next((i for i, b in enumerate(chain) if len(found[b])), len(chain) - 1)
                boxes = found[chain[used]]
                res[d]["ms"].append(sum(ms[b] for b in chain[:used + 1]))
                if len(boxes) == 0:
                    continue
                centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
                pairs = match([c[None] for c in centres], gt)
                res[d]["extra"] += len(boxes) - len(pairs)
                if not pairs:
                    continue
                sel = np.array([i for i, _ in pairs])
                key = boxes[sel].tobytes()
                if key not in cache:
                    cache[key] = refinement_passes(rec, img, boxes[sel])
                lms, ok = cache[key]
                for j, (_, g) in enumerate(pairs):
                    e = [float(nme(lm[j:j + 1, :, :2], gt[g][None])[0]) * 100 for lm in lms]
                    # off, always, roi test on the two-step (before), mean of 2 passes, robust (mean of 3)
                    res[d]["found"][(k, g)] = (e[0], e[1], e[1] if ok[j] else e[0], e[2] if ok[j] else e[0],
                                               e[3] if ok[j] else e[0])
        common = set.intersection(*(set(r["found"]) for r in res.values()))
        print(f"\n### {set_name}: {len(its)} photos, {n_gt} annotated faces; NME on the {len(common)} faces every detector finds")
        print("| detector | found | extra boxes | detect ms (median) | refine | NME mean | median | worst | >1.5x single "
              "| max ratio | all found: mean | median | worst | >1.5x |")
        print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for d in detectors:
            e = np.array([res[d]["found"][key] for key in sorted(common)]).reshape(-1, len(MODES))
            a = np.array(list(res[d]["found"].values())).reshape(-1, len(MODES))
            for m, mode in enumerate(MODES):
                worse = int((e[:, m] > 1.5 * e[:, 0]).sum())
                head = (f"| {d} | {len(res[d]['found'])}/{n_gt} | {res[d]['extra']} | {np.median(res[d]['ms']):.0f} "
                        if m == 0 else "| | | | ")
                print(f"{head}| {mode} | {e[:, m].mean():.3f} | {np.median(e[:, m]):.3f} | {e[:, m].max():.2f} | {worse} "
                      f"| {(e[:, m] / e[:, 0]).max():.2f} | {a[:, m].mean():.3f} | {np.median(a[:, m]):.3f} "
                      f"| {a[:, m].max():.2f} | {int((a[:, m] > 1.5 * a[:, 0]).sum())} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--model", default=models.DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=40, help="dev-split photos for the speed sections (default 40)")
    ap.add_argument("--sections", default="speed,cli,accuracy")
    ap.add_argument("--threads", type=int, default=0,
                    help="thread budget, as `mfirrn reconstruct --threads` (default 0: OMP_NUM_THREADS, else the cores "
                         "this process may use)")
    ap.add_argument("--detectors", default="faceboxes,dlib-hog,faceboxes+dlib-hog",
                    help="detectors for the accuracy section ('+' joins a chain; default %(default)s)")
    ap.add_argument("--tddfa-v2", metavar="DIR", default=None,
                    help="a built 3DDFA_V2 checkout: time its pipeline beside ours in the speed section (see tddfa_v2.py)")
    args = ap.parse_args()
    datasets = Path(args.datasets)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sections = args.sections.split(",")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    sets = photo_sets(datasets, args.n)
    with tempfile.TemporaryDirectory(prefix="mfirrn-bench-") as tmp:
        sets["720p"] = make_720p(sets["450x450"][:20], Path(tmp))
        if "speed" in sections:
            speed(sets, args.model, Path(tmp), args.threads, args.tddfa_v2)
        if "cli" in sections:
            cli(sets, Path(tmp), ["--threads", str(args.threads)])
    if "accuracy" in sections:
        accuracy(datasets, args.model, [d.replace("+", ",") for d in args.detectors.split(",")])


if __name__ == "__main__":
    main()
