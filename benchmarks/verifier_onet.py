"""The face verifier with O-Net fine-tuned on faces, hands, background and animals (tried, not shipped).

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/verifier_onet.py [--n-fit 9000] [--epochs 10]

The verifier's head reads O-Net's 256 features, and O-Net was trained on human faces against background: a cat's or
a dog's face looks like a face to it. Here O-Net itself (all layers but its box and landmark heads) is fine-tuned on
the verifier's data of ``benchmarks/verifiers.py`` (AFLW faces of every pose from the fit rows; the fit hands,
random squares and animal proposals of ``benchmarks/data/verifier.tsv``), on its 48x48 inputs exactly as the
pipeline crops them (the square around a face's 68 landmarks after the robust refinement): class-balanced logistic
loss (the animals half the non-faces' weight), random flips, brightness and shifts of up to 3 pixels
(``--occlude``: faces partly covered by pieces of the non-faces), AdamW. Then the logistic head is fitted again
on the fine-tuned features (with and without the animal proposals) and judged by the rule of
docs/experiments/wild.md ("Animal faces") on the validation rows, beside the shipped verifier (``--rule quantile``:
the threshold by its later rule R, the 0.5 % quantile of the good validation faces). Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import verifiers as V

from mfirrn.detect.faceboxes import FaceBoxes
from mfirrn.detect.mtcnn import crop_boxes, load_mtcnn_net, square_boxes
from mfirrn.inference.pipeline import Reconstructor
from mfirrn.inference.verify import CUES, EMBEDDING, FEATURES, VerifierHead, landmark_boxes

SETS = ("fit faces", "val faces", "fit non-faces", "val non-faces", "fit animals", "val animals")


def collect(n_fit: int, datasets: Path, builders: Optional[dict] = None) -> dict[str, dict[str, np.ndarray]]:
    """Each set's O-Net inputs (N, 3, 48, 48), its verifier features (N, 259) as shipped, and for faces the 21-point
    NME of the pipeline's fit (NaN for the others). The sets are made by benchmarks/verifiers.py's own functions,
    whose ``candidate`` is wrapped meanwhile to keep each face's O-Net input beside its numbers; ``builders`` (name
    -> function of ``(rec, mean, std)`` returning candidates) replace them."""
    fb = FaceBoxes(score_threshold=0.05, backend="onnxruntime", threads=1)
    rec = Reconstructor(dense=False, detector=fb, detector_backend="onnxruntime", detector_threads=1)
    k = len(FEATURES)
    rec._verifier = V.RecordingVerifier(backend="onnxruntime", threads=1,
                                        head=VerifierHead(FEATURES, (0.0,) * k, (1.0,) * k, (0.0,) * k, 0.0, 0.5))
    plain = V.candidate

    def with_input(rec_, image, boxes, mean, std):
        out = plain(rec_, image, boxes, mean, std)
        for c in out:
            square = square_boxes(landmark_boxes(np.array(c["landmarks"])[None]))
            c["onet_input"] = crop_boxes(image, square, 48).flip(1)[0].numpy()  # BGR -> RGB, as ONetScorer
        return out

    V.candidate = with_input  # verifiers.py's set builders call it by its module name
    mean = np.asarray(rec.model.stats.mean, np.float64).ravel()
    std = np.asarray(rec.model.stats.std, np.float64).ravel()
    root, rng = datasets / "aflw-21pt-train", np.random.default_rng(2)
    made = {"fit faces": lambda rec, mean, std: V.aflw_faces(rec, root, n_fit, True, mean, std),
            "val faces": lambda rec, mean, std: V.aflw_faces(rec, root, 600, False, mean, std),
            "fit non-faces": lambda rec, mean, std: V.non_faces(rec, "train", mean, std, rng),
            "val non-faces": lambda rec, mean, std: V.non_faces(rec, "val", mean, std, rng),
            "fit animals": lambda rec, mean, std: V.animals(rec, "train", mean, std),
            "val animals": lambda rec, mean, std: V.animals(rec, "val", mean, std)}
    sets = {}
    try:
        for name, make in (builders or made).items():
            cands = make(rec, mean, std)
            sets[name] = {"x": np.stack([c["onet_input"] for c in cands]).astype(np.float32),
                          "features": np.array([[c[f] for f in CUES + EMBEDDING] for c in cands]),
                          "nme": np.array([c.get("nme21", np.nan) for c in cands])}
    finally:
        V.candidate = plain
    return sets


def occlude_faces(batch: torch.Tensor, is_face: torch.Tensor, patches: torch.Tensor, share: float,
                  rng: np.random.Generator) -> torch.Tensor:
    """``batch`` (N, 3, 48, 48) with a ``share`` of its faces partly covered: a rectangle of 30-65 % of the side
    each way, at a random place, copied from the same place of a random non-face input of ``patches`` (a hand,
    background or an animal in front of the face). The face stays a face."""
    out = batch.clone()
    for i in np.flatnonzero(is_face.numpy() & (rng.random(len(batch)) < share)):
        h, w = (int(v) for v in rng.integers(14, 32, 2))
        y0, x0 = int(rng.integers(0, 48 - h + 1)), int(rng.integers(0, 48 - w + 1))
        k = int(rng.integers(len(patches)))
        out[i, :, y0:y0 + h, x0:x0 + w] = patches[k, :, y0:y0 + h, x0:x0 + w]
    return out


def degrade_inputs(batch: torch.Tensor, share: float, rng: np.random.Generator) -> torch.Tensor:
    """``batch`` (N, 3, 48, 48) of O-Net inputs with a ``share`` of them, faces and non-faces alike, made as a poor
    photo makes them: shrunk to 25-70 % and enlarged back, saved as JPEG at quality 10-50, darkened to 30-100 % of
    their brightness, with Gaussian noise of 0-12 grey levels (so that poor quality is no cue to either class)."""
    import cv2

    out = batch.clone()
    for i in np.flatnonzero(rng.random(len(batch)) < share):
        img = np.clip(batch[i].permute(1, 2, 0).numpy() * 128.0 + 127.5, 0, 255).astype(np.uint8)
        side = int(48 * rng.uniform(0.25, 0.7))
        img = cv2.resize(cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA), (48, 48),
                         interpolation=cv2.INTER_LINEAR)
        img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(10, 51))])[1],
                           cv2.IMREAD_COLOR)
        img = img.astype(np.float32) * rng.uniform(0.3, 1.0) + rng.normal(0, rng.uniform(0, 12), img.shape)
        out[i] = torch.from_numpy((np.clip(img, 0, 255) - 127.5) / 128.0).permute(2, 0, 1)
    return out


def finetune(sets: dict, epochs: int, animal_weight: float = 0.5, seed: int = 0,
             occlude: float = 0.0, degrade: float = 0.0) -> torch.nn.Module:
    """O-Net fine-tuned on the fit sets (faces 1, non-faces 0), returned in eval mode; ``occlude``: the share of
    faces in each batch partly covered by a piece of a non-face (:func:`occlude_faces`); ``degrade``: the share of
    inputs in each batch made poor (:func:`degrade_inputs`)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = load_mtcnn_net("onet").train()
    xs = [torch.from_numpy(sets[f"fit {k}"]["x"]) for k in ("faces", "non-faces", "animals")]
    x = torch.cat(xs)
    y = torch.cat([torch.ones(len(xs[0])), torch.zeros(len(xs[1]) + len(xs[2]))])
    w = torch.cat([torch.full((len(xs[0]),), 1 / len(xs[0])), torch.full((len(xs[1]),), (1 - animal_weight) / len(xs[1])),
                   torch.full((len(xs[2]),), animal_weight / len(xs[2]))])
    w = w / w.mean()
    params = [p for n, p in net.named_parameters() if not n.startswith(("dense6_2", "dense6_3"))]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=1e-3)
    for epoch in range(epochs):
        perm, total = torch.randperm(len(x)), 0.0
        for i in range(0, len(x), 128):
            j = perm[i:i + 128]
            batch = x[j]
            if occlude:
                batch = occlude_faces(batch, y[j] == 1, x[len(xs[0]):], occlude, rng)
            if degrade:
                batch = degrade_inputs(batch, degrade, rng)
            flip = torch.rand(len(j)) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
            batch = batch * (1 + 0.4 * (torch.rand(len(j), 1, 1, 1) - 0.5)) + 0.2 * (torch.rand(len(j), 1, 1, 1) - 0.5)
            dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
            logit = net.dense6_1(net.embed(torch.roll(batch, (dy, dx), (2, 3))))
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logit[:, 1] - logit[:, 0], y[j],
                                                                         reduction="none") * w[j]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(j)
        print(f"epoch {epoch + 1}: loss {total / len(x):.4f}", flush=True)
    return net.eval()


def load_or_collect(path: Optional[str], names, make: Callable, n_fit: int) -> dict[str, dict[str, np.ndarray]]:
    """The sets ``names`` from the cache file ``path`` when it exists (refused when it was made with another
    ``n_fit``), else ``make()``, written to ``path`` when one is given."""
    if path and Path(path).is_file():
        z = np.load(path)
        if "n_fit" in z.files and int(z["n_fit"]) != n_fit:
            raise SystemExit(f"{path} holds the sets of --n-fit {int(z['n_fit'])}, not {n_fit}: "
                             "give another cache file or that --n-fit")
        return {k: {j: z[f"{k}|{j}"] for j in ("x", "features", "nme")} for k in names}
    sets = make()
    if path:
        np.savez_compressed(path, n_fit=np.array(n_fit),
                            **{f"{k}|{j}": v for k, d in sets.items() for j, v in d.items()})
    return sets


def seed_state(sets: dict, epochs: int, seed: int, save: Optional[str], name: str, **options) -> dict:
    """One seed's fine-tuned O-Net (:func:`finetune` with ``options``): read from ``save``/``name`` when it exists,
    else trained and, with ``save``, written there. ``name`` must spell every training setting, so that a run with
    other settings never reads it."""
    saved = Path(save) / name if save else None
    if saved is not None and saved.is_file():
        return torch.load(saved, map_location="cpu", weights_only=True)
    state = finetune(sets, epochs, seed=seed, **options).state_dict()
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, saved)
    return state


def onet_features(net: torch.nn.Module, s: dict) -> np.ndarray:
    """The verifier's 259 features with O-Net's probability and embedding read by ``net``."""
    with torch.inference_mode():
        emb = net.embed(torch.from_numpy(s["x"]))
        prob = net.face_prob(emb)
    return np.concatenate([prob.numpy()[:, None], s["features"][:, 1:3], emb.numpy()], axis=1)


def judge(name: str, feats: dict[str, np.ndarray], good: np.ndarray, with_animals: bool, rule: str) -> None:
    """Fit the head on ``feats`` and print its row of the table, its threshold by ``rule`` ("lowest": the lowest
    good validation face; "quantile": rule R, their 0.5 % quantile)."""
    neg = feats["fit non-faces"]
    if with_animals:
        neg = np.concatenate([neg, feats["fit animals"]])
    l2 = V.cross_validated_l2(feats["fit faces"], neg)
    mu, sd, w, b = V.fit_head(feats["fit faces"], neg, l2)
    p, n, a = (V.head_scores((mu, sd, w, b), feats[k]) for k in ("val faces", "val non-faces", "val animals"))
    print_row(f"{name}, head fitted {'with' if with_animals else 'without'} animals (L2 {l2:g})", p, n, a, good, rule)


def print_row(name: str, p: np.ndarray, n: np.ndarray, a: np.ndarray, good: np.ndarray, rule: str,
              threshold: Optional[float] = None) -> None:
    """Print one row of the table: the confidences of the validation faces ``p``, non-faces ``n`` and animal
    proposals ``a`` at the threshold by ``rule`` (or ``threshold``) and at 99.5 % recall."""
    if threshold is None:
        threshold = V.rule_threshold(p[good]) if rule == "lowest" else V.quantile_threshold(p[good])
    t995 = np.quantile(p, 1 - V.RECALL)
    print(f"| {name} | {threshold:.2f} ({p[good].min():.3f}) | {int((p[good] < threshold).sum())}/{int(good.sum())} "
          f"| {int((n >= threshold).sum())}/{len(n)} | {int((n >= t995).sum())}/{len(n)} | "
          f"{int((a >= threshold).sum())}/{len(a)} | {int((a >= t995).sum())}/{len(a)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--n-fit", type=int, default=9000, help="AFLW faces asked for (default %(default)s; the 60-90 "
                    "degree bin of the fit rows holds fewer)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", default="0", help="fine-tuning seeds, comma-separated (default %(default)s)")
    ap.add_argument("--cache", default=None, metavar="FILE.npz",
                    help="keep the sets (O-Net inputs, features) in FILE (reused when it exists)")
    ap.add_argument("--save", default=None, metavar="DIR",
                    help="write each seed's fine-tuned O-Net to DIR (read from there when it exists)")
    ap.add_argument("--soup", action="store_true", help="also judge the O-Net whose weights are the seeds' average")
    ap.add_argument("--occlude", type=float, default=0.0,
                    help="share of the faces in each batch partly covered by a piece of a non-face (default 0)")
    ap.add_argument("--rule", choices=("lowest", "quantile"), default="lowest",
                    help="the default threshold: the lowest good validation face, or their 0.5 %% quantile (rule R "
                    "of docs/experiments/wild.md); rounded down to 0.05 (default %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.time()
    sets = load_or_collect(args.cache, SETS, lambda: collect(args.n_fit, Path(args.datasets)), args.n_fit)
    print(", ".join(f"{k}: {len(v['x'])}" for k, v in sets.items()) + f"; {time.time() - t0:.0f} s")
    good = sets["val faces"]["nme"] <= V.GOOD_NME
    print(f"\n| verifier | threshold (rule {args.rule}) | good faces below it | non-faces passing | at 99.5 % recall | "
          "animal proposals passing | at 99.5 % recall |\n|---|---:|---:|---:|---:|---:|---:|")
    shipped = {k: v["features"] for k, v in sets.items()}
    head = VerifierHead.load()
    scores = [head(shipped[k]) for k in ("val faces", "val non-faces", "val animals")]
    print_row("the shipped verifier at its threshold", *scores, good, args.rule, threshold=head.threshold)
    print_row("the shipped verifier, threshold by the rule", *scores, good, args.rule)
    judge("O-Net as shipped (head refitted on these faces)", shipped, good, False, args.rule)
    def judge_net(name: str, state: dict) -> None:
        net = load_mtcnn_net("onet", "cpu")
        net.load_state_dict(state)
        tuned = {k: onet_features(net.eval(), v) for k, v in sets.items()}
        for with_animals in (False, True):
            judge(name, tuned, good, with_animals, args.rule)

    states = []
    for seed in (int(v) for v in args.seeds.split(",")):
        name = f"onet-finetuned-seed{seed}-n{args.n_fit}-epochs{args.epochs}-occlude{args.occlude:g}.pt"
        state = seed_state(sets, args.epochs, seed, args.save, name, occlude=args.occlude)
        states.append(state)
        judge_net(f"O-Net fine-tuned, seed {seed}", state)
    if args.soup:  # one O-Net, the average of the seeds' weights (all start from MTCNN's O-Net)
        judge_net(f"O-Net averaged over seeds {args.seeds}",
                  {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]})
    print(f"\n{time.time() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
