"""Face verifier candidates: precision and recall of each cue, and the fit of the shipped logistic head.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/verifiers.py [--n-fit 3000] [--n-val 600] \
        [--fit [--head H]]

Faces and non-faces go through the photo pipeline (:class:`~mfirrn.inference.pipeline.Reconstructor`,
default model and robust refinement) from a given box, and the verifier's features are read on the
result exactly as the pipeline computes them:

* **faces**: AFLW crops (``$MFIRRN_DATASETS/aflw-21pt-train``, every pose), the same number per |yaw| bin
  [0, 30), [30, 60), [60, 90]; rows before 15000 fit the head, rows from 15000 on are the validation
  set. Each crop is padded (edge pixels repeated) to 240x240 and its box is FaceBoxes' (the
  synthetic centre box where FaceBoxes finds none);
* **non-faces**: the hand boxes of HandsDataset photos and random squares on photos without a face
  (``benchmarks/data/verifier.tsv``; its ``split`` column says fit or validation). A hand candidate
  whose crop slides onto a face behind the hand (its landmarks' centre inside a FaceBoxes box >= 0.95
  that does not overlap the hand) is left out;
* **animals**: FaceBoxes' proposals (score >= 0.3, at most 5 a photo) on the cat and dog photos of
  ``verifier.tsv`` (role ``animals``, no person in them), kept apart from the non-faces above so that the
  candidates' table stays comparable; the head fitted with them is weighed against the head fitted without
  them by the rule of docs/experiments/wild.md ("Animal faces"), which ``--fit`` applies.

Candidates: MTCNN's O-Net probability (``onet``), FaceBoxes run again on the face's final crop seen at
160x160 (``fbcrop``: its best score for a box holding the landmarks' centre), the passes' landmark
agreement (``lmdiff``, lower is better) and roi agreement (``agree``), the 3DMM coefficients'
Mahalanobis distance under the model's param stats (``prior``, lower is better), the landmarks' box
width/height (``aspect``), logistic heads (fitted on the fit split) over the three scalar cues (``onet``,
``lmdiff``, ``agree``), over them and ``fbcrop``, and over them and O-Net's 256 features (the shipped
verifier; its L2 penalty chosen by 5-fold cross-validation on the fit split). For each: the threshold that
keeps 99.5 % of the validation faces (and all of them), and how many validation non-faces pass it. Then the
hard negatives (``proposals-labels.tsv``: non-face proposals the three-cue head kept on fit-split photos): how
many the verifier keeps, and what fitting them as non-faces does (tried, not shipped). Last, the heads over the three
cues and the face's 40 shape and 10 expression coefficients (``coefficients``: the strict verifier,
``--verifier strict``; ``coefficients-masked``: with the masked faces of ``masked-faces.tsv``'s fit rows among its
faces, tried, not shipped), beside the standard head, on the validation faces, the masked faces of its val rows,
hands, random squares, hard non-faces and animal proposals.

The default ``min_confidence``: the head's lowest confidence over the validation faces the pipeline
reconstructs (21-point NME <= 10 %, AFLW's points against the 68 mapped to them, normalised by the
crop side / sqrt(2)), rounded down to a multiple of 0.05: a face the pipeline gets right is never
dropped on the validation set. ``--fit`` writes a head (``--head``: ``embedding``, the standard verifier, to
``data/weights/face-verifier.json``; ``coefficients``, the strict one, to ``face-verifier-strict.json``) with that
threshold. The AFLW2000-3D dev split is never used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mfirrn.evaluation.metrics import map_68_to_21
from mfirrn.geometry.crop import crop_image, roi_iou
from mfirrn.inference.pipeline import Reconstructor, read_image
from mfirrn.inference.verify import (
    COEFFICIENTS,
    CUES,
    DEFAULT_HEAD_PATH,
    EMBEDDING,
    FEATURES,
    STRICT_HEAD_PATH,
    FaceVerifier,
    VerifierHead,
    landmark_boxes,
)
from mfirrn.io.assets import fetch_asset, read_asset_table

DATA = Path(__file__).resolve().parent / "data"
RECALL = 0.995
GOOD_NME = 0.10  # a validation face the pipeline reconstructs: its default threshold must keep it
ANIMAL_PROPOSAL = 0.3  # FaceBoxes proposals on animal photos at or above this score are non-faces
ANIMALS_PER_PHOTO = 5
L2_GRID = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1)  # the embedding head's L2 penalty, chosen by cross-validation


FBCROP_SIZE = 160  # FaceBoxes' smallest anchor is 32 px


class RecordingVerifier(FaceVerifier):
    """The pipeline's verifier, keeping the features of its last call."""

    last: np.ndarray = np.zeros((0, len(FEATURES)))

    def features(self, image, landmarks, lmdiff, agree, params, crops=None):
        self.last = super().features(image, landmarks, lmdiff, agree, params, crops)
        return self.last


def fbcrop(faceboxes, image: np.ndarray, roi: np.ndarray, landmarks: np.ndarray) -> float:
    """FaceBoxes' best score on the crop ``roi`` seen at 160x160, for a box holding the landmarks' centre."""
    found = faceboxes(crop_image(image, roi, FBCROP_SIZE))
    if not len(found):
        return 0.0
    box = landmark_boxes(landmarks[None])[0]
    cx, cy = ((box[:2] + box[2:]) / 2 - roi[:2]) * FBCROP_SIZE / (roi[2] - roi[0])
    hit = (found[:, 0] <= cx) & (cx <= found[:, 2]) & (found[:, 1] <= cy) & (cy <= found[:, 3])
    return float(found[hit, 4].max()) if hit.any() else 0.0


def candidate(rec: Reconstructor, image: np.ndarray, boxes: np.ndarray, mean: np.ndarray,
              std: np.ndarray) -> list[dict]:
    """Run the pipeline from ``boxes`` (K, 4) and return each face's candidate numbers."""
    faces = rec(image, boxes=np.asarray(boxes, np.float64))
    feats = rec.verifier.last
    out = []
    for f, x in zip(faces, feats):
        lm = f.landmarks[:, :2]
        w, h = np.ptp(lm, axis=0)
        z = (f.params[12:] - mean[12:]) / std[12:]
        out.append({**dict(zip(FEATURES, map(float, x))), "fbcrop": fbcrop(rec.detector, image, f.roi, lm),
                    "prior": float(z @ z), "aspect": float(w / max(h, 1e-9)), "centre": lm.mean(0).tolist(),
                    "landmarks": lm.tolist()})
    return out


def aflw_faces(rec, root: Path, n: int, fit: bool, mean, std) -> list[dict]:
    names = (root / "AFLW_GT_crop.list").read_text().split()
    yaws = np.abs(np.load(root / "AFLW_GT_crop_yaws.npy")).ravel()
    pts21 = np.load(root / "AFLW_GT_pts21.npy").transpose(0, 2, 1)  # (N, 21, 2) original pixels, -1 = invisible
    roi = np.load(root / "AFLW_GT_crop_roi_box.npy")
    part = np.arange(len(yaws)) < 15000 if fit else np.arange(len(yaws)) >= 15000
    rng = np.random.default_rng(0 if fit else 1)
    out = []
    for lo, hi in ((0, 30), (30, 60), (60, 90.01)):
        idx = np.flatnonzero(part & (yaws >= lo) & (yaws < hi))
        for i in rng.choice(idx, min(n // 3, len(idx)), replace=False):
            crop = cv2.imread(str(root / "AFLW_GT_crop" / names[i]))
            img = cv2.copyMakeBorder(crop, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
            found = rec.detector(img)
            near = found[roi_iou(found[:, :4], np.array([[70, 70, 170, 170.0]])) > 0.3] if len(found) else found
            box = near[:1, :4] if len(near) else np.array([[75, 75, 165, 165.0]])
            gt = (pts21[i] - roi[i, :2]) * 120 / (roi[i, 2] - roi[i, 0]) + 60  # in the padded crop
            gt[(pts21[i] == -1).any(-1)] = np.nan
            for c in candidate(rec, img, box, mean, std):
                err = np.linalg.norm(map_68_to_21(np.array(c.pop("landmarks"))[None])[0] - gt, axis=-1)
                out.append(dict(c, yaw=float(yaws[i]), nme21=float(np.nanmean(err) / (120 / np.sqrt(2)))))
    return out


def non_faces(rec, split: str, mean, std, rng) -> list[dict]:
    out = []
    for asset, row in read_asset_table(DATA / "verifier.tsv"):
        if row["split"] != split:
            continue
        if row["role"] == "animals":
            continue  # see animals()
        img = read_image(fetch_asset(asset))
        h, w = img.shape[:2]
        if row["role"] == "hands":
            hands = np.array(json.loads(row["labels"])["hands"], np.float64)
            found = rec.detector(img)
            faces = found[found[:, 4] >= 0.95, :4] if len(found) else np.zeros((0, 4))
            for c, hand in zip(candidate(rec, img, hands, mean, std), hands):
                c.pop("landmarks")
                cx, cy = c["centre"]
                behind = [f for f in faces if f[0] <= cx <= f[2] and f[1] <= cy <= f[3] and roi_iou(f, hand) < 0.1]
                if not behind:
                    out.append(dict(c, kind="hand"))
        else:
            s = rng.uniform(40, min(h, w) * 0.8, 12)
            x, y = rng.uniform(0, 1, 12) * (w - s), rng.uniform(0, 1, 12) * (h - s)
            boxes = np.stack([x, y, x + s, y + s * rng.uniform(1.0, 1.3, 12)], 1)
            for c in candidate(rec, img, boxes, mean, std):
                c.pop("landmarks")
                out.append(dict(c, kind="random"))
    return out


def animals(rec, split: str, mean, std) -> list[dict]:
    """FaceBoxes' proposals (>= ANIMAL_PROPOSAL, the best ANIMALS_PER_PHOTO) on the ``animals`` photos of ``split``:
    cats and dogs with no person in the photo, so every proposal is a non-face."""
    out = []
    for asset, row in read_asset_table(DATA / "verifier.tsv"):
        if row["role"] != "animals" or row["split"] != split:
            continue
        img = read_image(fetch_asset(asset))
        found = rec.detector(img)
        boxes = found[found[:, 4] >= ANIMAL_PROPOSAL][:ANIMALS_PER_PHOTO, :4] if len(found) else found
        if len(boxes):
            for c in candidate(rec, img, boxes, mean, std):
                c.pop("landmarks")
                out.append(dict(c, kind="animal", photo=asset.path))
    return out


def masked_faces(rec, split: str, mean, std) -> list[dict]:
    """The face of each ``split`` photo of ``masked-faces.tsv`` (people in masks): FaceBoxes' best box if it scores
    above 0.5, through the pipeline from it."""
    out = []
    for asset, row in read_asset_table(DATA / "masked-faces.tsv"):
        if row["split"] != split:
            continue
        img = read_image(fetch_asset(asset))
        found = rec.detector(img)
        if len(found) and found[0, 4] > 0.5:
            for c in candidate(rec, img, found[:1, :4], mean, std):
                c.pop("landmarks")
                out.append(dict(c, kind="masked", photo=asset.path))
    return out


def hard_negatives(rec, mean, std) -> list[dict]:
    """The non-faces of ``proposals-labels.tsv`` on the fit split's photos (what FaceBoxes proposes below 0.5 and
    the three-cue head kept: hands, necks, walls beside a face), through the pipeline from their landmark boxes."""
    assets = {a.path: (a, row) for a, row in read_asset_table(DATA / "verifier.tsv")}
    boxes: dict[str, list[list[float]]] = {}
    for line in (DATA / "proposals-labels.tsv").read_text().splitlines():
        if line.startswith("#") or line.startswith("key\t") or not line.strip():
            continue
        key, box, label = line.split("\t")[:3]
        if label == "false" and key in assets and assets[key][1]["split"] == "train":
            boxes.setdefault(key, []).append([float(v) for v in box.split(",")])
    out = []
    for key, bs in boxes.items():
        for c in candidate(rec, read_image(fetch_asset(assets[key][0])), np.array(bs), mean, std):
            c.pop("landmarks")
            out.append(dict(c, kind="proposal"))
    return out


def fit_head(pos: np.ndarray, neg: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Logistic regression (classes weighted equally, L2 on the standardised weights) -> mean, std, w, b."""
    x = np.concatenate([pos, neg])
    y = torch.tensor(np.r_[np.ones(len(pos)), np.zeros(len(neg))])
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xt = torch.tensor((x - mu) / sd)
    sw = torch.where(y == 1, 1.0, len(pos) / len(neg))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, y, reduction="none") * sw).mean()
        loss = loss + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return mu, sd, w.detach().numpy(), float(b.detach())


def cross_validated_l2(pos: np.ndarray, neg: np.ndarray, grid=L2_GRID, folds: int = 5) -> float:
    """The L2 penalty of :func:`fit_head` with the lowest mean held-out log loss (both classes weighted equally)
    over ``folds`` folds of the fit split."""
    rng = np.random.default_rng(0)
    fold_p, fold_n = rng.permutation(len(pos)) % folds, rng.permutation(len(neg)) % folds
    losses = []
    for l2 in grid:
        loss = 0.0
        for k in range(folds):
            mu, sd, w, b = fit_head(pos[fold_p != k], neg[fold_n != k], l2)
            p = head_scores((mu, sd, w, b), pos[fold_p == k])
            n = head_scores((mu, sd, w, b), neg[fold_n == k])
            loss += -np.log(np.clip(p, 1e-12, 1)).mean() - np.log(np.clip(1 - n, 1e-12, 1)).mean()
        losses.append(loss / folds)
    print("L2 penalty of the embedding head, 5-fold log loss: "
          + ", ".join(f"{l2:g}: {v:.4f}" for l2, v in zip(grid, losses)))
    return float(grid[int(np.argmin(losses))])


def animal_rule(full: dict, sets: dict, good: np.ndarray, fitted: tuple, threshold: float, head: VerifierHead,
                l2: float, n_fit: int) -> tuple[VerifierHead, np.ndarray, float]:
    """The head fitted with the fit animals' proposals as non-faces, against ``head`` (fitted without them), by the
    rule of docs/experiments/wild.md ("Animal faces"): returns the head the rule keeps, with its weights and bias."""
    w, b = fitted[2:]
    a_val = full["val animals"]
    old_p = head_scores(fitted, full["val faces"])
    old_n = head_scores(fitted, full["val non-faces"])
    old_a = head_scores(fitted, a_val)
    neg = np.concatenate([full["fit non-faces"], full["fit animals"]])
    print(f"\nAnimals: {len(full['fit animals'])} proposals on the fit photos, {len(a_val)} on the validation photos "
          f"({len({c['photo'] for c in sets['val animals']})} photos)")
    al2 = cross_validated_l2(full["fit faces"], neg)
    amu, asd, aw, ab = fit_head(full["fit faces"], neg, al2)
    new_p = head_scores((amu, asd, aw, ab), full["val faces"])
    new_n = head_scores((amu, asd, aw, ab), full["val non-faces"])
    new_a = head_scores((amu, asd, aw, ab), a_val)
    new_thr = rule_threshold(new_p[good])
    rows = {}
    print("| head | threshold (rule) | val faces kept | non-faces passing | at 99.5 % recall | animal proposals passing "
          "| at 99.5 % recall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (p, n, a, t) in {"fitted without animals (shipped)": (old_p, old_n, old_a, threshold),
                               f"fitted with animals (L2 {al2:g})": (new_p, new_n, new_a, new_thr)}.items():
        t995 = np.quantile(p, 1 - RECALL)
        rows[name] = (t, int((n >= t).sum()), int((n >= t995).sum()), int((a >= t).sum()))
        print(f"| {name} | {t:.2f} ({p[good].min():.3f}) | {(p >= t).sum()}/{len(p)} | {rows[name][1]}/{len(n)} | "
              f"{rows[name][2]}/{len(n)} | {rows[name][3]}/{len(a)} | {int((a >= t995).sum())}/{len(a)} |")
    (_, n0, r0, a0), (t1, n1, r1, a1) = rows.values()
    checks = {"threshold >= 0.05": t1 >= 0.05, "non-faces at the threshold not more": n1 <= n0,
              "non-faces at 99.5 % recall not more": r1 <= r0, "fewer animal proposals": a1 < a0}
    print("rule: " + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items()))
    if not all(checks.values()):
        print("-> the head fitted without animals stays")
        return head, w, b
    print("-> the head fitted with animals replaces it (then check the held-out photos: benchmarks/wild.py)")
    note = (f"benchmarks/verifiers.py --n-fit {n_fit}: logistic fit (L2 {al2:g}) on {len(full['fit faces'])} AFLW faces "
            f"and {len(neg)} non-faces ({len(full['fit animals'])} of them FaceBoxes proposals on cats and dogs); "
            f"threshold: every validation face with 21-point NME <= {GOOD_NME:.0%} kept")
    return (VerifierHead(CUES + EMBEDDING, tuple(map(float, amu)), tuple(map(float, asd)), tuple(map(float, aw)), ab,
                         t1, note=note), aw, ab)


def coefficient_heads(sets: dict, good: np.ndarray, kinds: np.ndarray, others: dict,
                      n_fit: int) -> dict[str, VerifierHead]:
    """The heads over ``onet``, ``lmdiff``, ``agree`` and the 40 shape and 10 expression coefficients (docs/experiments/
    wild.md, "The regressor's coefficients as a verifier cue"), fitted as the embedding head (the same rows, L2 by
    5-fold cross-validation, threshold by the rule): ``coefficients`` on the AFLW fit faces, ``coefficients-masked``
    with the fit rows' masked faces among its faces. Prints their validation counts beside ``others`` (name ->
    fitted mean, std, weights, bias, threshold) and returns them by name."""
    names = CUES + COEFFICIENTS
    if "shape_0" not in sets["fit faces"][0]:
        raise SystemExit("the --cache file is from before the coefficient features: delete it and run again")
    m = {k: np.array([[c[f] for f in names] for c in v]).reshape(len(v), len(names)) for k, v in sets.items()}
    print(f"\nThe heads over onet, lmdiff, agree and the 50 shape and expression coefficients ({len(m['fit masked'])} "
          f"fit and {len(m['val masked'])} validation masked faces):")
    heads, rows = {}, dict(others)
    for key, faces, what in (("coefficients", m["fit faces"], "AFLW faces"),
                             ("coefficients-masked", np.concatenate([m["fit faces"], m["fit masked"]]),
                              "AFLW faces and masked faces")):
        l2 = cross_validated_l2(faces, m["fit non-faces"])
        fitted = fit_head(faces, m["fit non-faces"], l2)
        threshold = rule_threshold(head_scores(fitted, m["val faces"])[good])
        rows[f"{key} (L2 {l2:g})"] = (*fitted, threshold)
        note = (f"benchmarks/verifiers.py --n-fit {n_fit} --head {key}: logistic fit (L2 {l2:g}) on {len(faces)} "
                f"{what} and {len(m['fit non-faces'])} non-faces; threshold: every validation face with 21-point NME "
                f"<= {GOOD_NME:.0%} kept")
        heads[key] = VerifierHead(names, *(tuple(map(float, a)) for a in fitted[:3]), float(fitted[3]), threshold,
                                  note=note)
    yaw = np.array([c["yaw"] for c in sets["val faces"]])
    print("| head | threshold (rule) | validation faces kept (at yaw 60-90) | masked faces kept | hands passing "
          "| random squares passing | hard non-faces passing | animal proposals passing |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (mu, sd, w, b, t) in rows.items():
        cols = CUES + EMBEDDING if len(w) == len(CUES + EMBEDDING) else names
        x = {k: np.array([[c[f] for f in cols] for c in v]).reshape(len(v), len(cols)) for k, v in sets.items()}
        passed = {k: head_scores((mu, sd, w, b), x[k]) >= t for k in x}
        p, n = passed["val faces"], passed["val non-faces"]
        print(f"| {name} | {t:.2f} | {p.sum()}/{len(p)} ({p[yaw >= 60].sum()}/{(yaw >= 60).sum()}) | "
              f"{passed['val masked'].sum()}/{len(passed['val masked'])} | "
              f"{(n & (kinds == 'hand')).sum()}/{(kinds == 'hand').sum()} | {(n & (kinds == 'random')).sum()}/"
              f"{(kinds == 'random').sum()} | {passed['hard non-faces'].sum()}/{len(x['hard non-faces'])} | "
              f"{passed['val animals'].sum()}/{len(x['val animals'])} |")
    return heads

def rule_threshold(confidence_of_good_faces: np.ndarray) -> float:
    """The default threshold by the rule: the lowest confidence of the good validation faces, rounded down to a
    multiple of 0.05 (so that no face the pipeline reconstructs well is dropped)."""
    return float(np.floor(np.min(confidence_of_good_faces) * 20) / 20)


def quantile_threshold(confidence_of_good_faces: np.ndarray, q: float = 0.005) -> float:
    """The default threshold by rule R of docs/experiments/wild.md: the ``q`` quantile of the good validation
    faces' confidences, rounded down to a multiple of 0.05 (no single face decides it; up to a share ``q`` of the
    good faces fall below it)."""
    return float(np.floor(np.quantile(confidence_of_good_faces, q) * 20) / 20)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def head_scores(fitted: tuple, x: np.ndarray) -> np.ndarray:
    """Confidences (N,) of a head ``fitted`` by :func:`fit_head` (mean, std, weights, bias) on features ``x`` (N, K):
    the formula of :class:`mfirrn.inference.verify.VerifierHead`, on the arrays a fit returns."""
    mu, sd, w, b = fitted
    return _sigmoid(((x - mu) / sd) @ w + b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--n-fit", type=int, default=3000, help="AFLW faces of the fit split (default %(default)s)")
    ap.add_argument("--n-val", type=int, default=600, help="AFLW faces of the validation split (default %(default)s)")
    ap.add_argument("--fit", action="store_true", help="write the fitted head to --out")
    ap.add_argument("--head", choices=("embedding", "coefficients", "coefficients-masked"), default="embedding",
                    help="the head --fit writes: onet, lmdiff, agree with O-Net's 256 features (embedding) or with "
                         "the 50 shape and expression coefficients, fitted on AFLW faces (coefficients) or on them and "
                         "masked faces (coefficients-masked); default: embedding, the standard verifier; "
                         "coefficients is the strict one")
    ap.add_argument("--out", type=Path, default=None,
                    help="where --fit writes (default: the package's file of that head, "
                         "data/weights/face-verifier.json or face-verifier-strict.json)")
    ap.add_argument("--cache", default=None, metavar="FILE.json",
                    help="keep the candidates' numbers in FILE (reused when it exists: a refit without the pipeline)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    from mfirrn.detect.faceboxes import FaceBoxes

    fb = FaceBoxes(score_threshold=0.05, backend="onnxruntime", threads=1)  # finds weak faces too
    rec = Reconstructor(dense=False, detector=fb, detector_backend="onnxruntime", detector_threads=1)
    k = len(FEATURES)
    neutral = VerifierHead(FEATURES, (0.0,) * k, (1.0,) * k, (0.0,) * k, 0.0, 0.5)  # features only, fitted below
    rec._verifier = RecordingVerifier(backend="onnxruntime", threads=1, head=neutral)
    mean = np.asarray(rec.model.stats.mean, np.float64).ravel()
    std = np.asarray(rec.model.stats.std, np.float64).ravel()
    root = Path(args.datasets) / "aflw-21pt-train"
    rng = np.random.default_rng(2)
    if args.cache and Path(args.cache).is_file():
        sets = json.loads(Path(args.cache).read_text())
        if "hard non-faces" not in sets:  # a cache from before the hard negatives
            sets["hard non-faces"] = hard_negatives(rec, mean, std)
            Path(args.cache).write_text(json.dumps(sets))
        if "fit animals" not in sets:  # a cache from before the animals
            sets["fit animals"] = animals(rec, "train", mean, std)
            sets["val animals"] = animals(rec, "val", mean, std)
            Path(args.cache).write_text(json.dumps(sets))
        if "fit masked" not in sets:  # a cache from before the masked faces
            sets["fit masked"] = masked_faces(rec, "fit", mean, std)
            sets["val masked"] = masked_faces(rec, "val", mean, std)
            Path(args.cache).write_text(json.dumps(sets))
    else:
        sets = {"fit faces": aflw_faces(rec, root, args.n_fit, True, mean, std),
                "val faces": aflw_faces(rec, root, args.n_val, False, mean, std),
                "fit non-faces": non_faces(rec, "train", mean, std, rng),
                "val non-faces": non_faces(rec, "val", mean, std, rng),
                "hard non-faces": hard_negatives(rec, mean, std),
                "fit animals": animals(rec, "train", mean, std),
                "val animals": animals(rec, "val", mean, std),
                "fit masked": masked_faces(rec, "fit", mean, std),
                "val masked": masked_faces(rec, "val", mean, std)}
        if args.cache:
            Path(args.cache).write_text(json.dumps(sets))
    print(f"machine {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          + ", ".join(f"{k}: {len(v)}" for k, v in sets.items()) + f"; {time.time() - t0:.0f} s")

    def matrix(names):
        return {k: np.array([[c[f] for f in names] for c in v]) for k, v in sets.items()}

    def logistic(names, l2=1e-2):
        m = matrix(names)
        mu, sd, w, b = fit_head(m["fit faces"], m["fit non-faces"], l2)
        return (mu, sd, w, b), (head_scores((mu, sd, w, b), m["val faces"]),
                                head_scores((mu, sd, w, b), m["val non-faces"]))

    _, three = logistic(CUES)
    _, four = logistic((*CUES, "fbcrop"))
    embedding_names = CUES + EMBEDDING
    full = matrix(embedding_names)
    l2 = cross_validated_l2(full["fit faces"], full["fit non-faces"])
    (mu, sd, w, b), shipped = logistic(embedding_names, l2)
    vf, vn = sets["val faces"], sets["val non-faces"]
    yaw = np.array([c["yaw"] for c in vf])
    cands = {"onet": 1, "fbcrop": 1, "lmdiff": -1, "agree": 1, "prior": -1, "aspect": 1}
    score = {k: (np.array([s * c[k] for c in vf]), np.array([s * c[k] for c in vn])) for k, s in cands.items()}
    verifier = f"logistic head (onet, lmdiff, agree, O-Net's 256 features; L2 {l2:g})"
    score["logistic head (onet, lmdiff, agree)"] = three
    score["logistic head (onet, lmdiff, agree, fbcrop)"] = four
    score[verifier] = shipped
    kinds = np.array([c["kind"] for c in vn])
    print(f"\nValidation: {len(vf)} AFLW faces (|yaw| 60-90: {(yaw >= 60).sum()}), {len(vn)} non-faces "
          f"({(kinds == 'hand').sum()} hands, {(kinds == 'random').sum()} random squares)")
    print("| candidate | AUC | threshold (99.5 % faces kept) | non-faces passing | precision | faces kept at 60-90 "
          "| threshold (all faces kept) | non-faces passing |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (p, n) in score.items():
        auc = (p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean()
        t995, tall = np.quantile(p, 1 - RECALL), p.min()
        fp = int((n >= t995).sum())
        prec = (p >= t995).sum() / max((p >= t995).sum() + fp, 1)
        sign = -1 if cands.get(name, 1) < 0 else 1
        print(f"| {name} | {auc:.4f} | {sign * t995:.3f} | {fp}/{len(n)} | {prec:.3f} | "
              f"{(p[yaw >= 60] >= t995).mean():.3f} | {sign * tall:.3f} | {int((n >= tall).sum())}/{len(n)} |")
    good = np.array([c["nme21"] for c in vf]) <= GOOD_NME
    print(f"\nThe rule for the default threshold: the lowest confidence of the {good.sum()} validation faces with "
          f"21-point NME <= {GOOD_NME:.0%}, rounded down to a multiple of 0.05")
    for name in ("logistic head (onet, lmdiff, agree)", "logistic head (onet, lmdiff, agree, fbcrop)", verifier):
        p, n = score[name]
        chosen = rule_threshold(p[good])
        print(f"- {name}: threshold {chosen:.2f} ({p[good].min():.3f}) keeps {(p >= chosen).sum()}/{len(p)} faces "
              f"({(p[yaw >= 60] >= chosen).sum()}/{(yaw >= 60).sum()} at |yaw| 60-90); {(n >= chosen).sum()}/{len(n)} "
              f"non-faces pass ({((n >= chosen) & (kinds == 'hand')).sum()} hands)")
    head = VerifierHead(embedding_names, tuple(map(float, mu)), tuple(map(float, sd)), tuple(map(float, w)), b,
                        chosen, note=f"benchmarks/verifiers.py --n-fit {args.n_fit}: logistic fit (L2 {l2:g}) on "
                        f"{len(sets['fit faces'])} AFLW faces and {len(sets['fit non-faces'])} non-faces; threshold: "
                        f"every validation face with 21-point NME <= {GOOD_NME:.0%} kept")
    hard = full["hard non-faces"]
    print(f"\nHard negatives (the {len(hard)} non-face proposals of proposals-labels.tsv on fit-split photos): the "
          f"verifier keeps {int((head_scores((mu, sd, w, b), hard) >= chosen).sum())} at {chosen:.2f}")
    both = np.concatenate([full["fit non-faces"], hard])
    hmu, hsd, hw, hb = fit_head(full["fit faces"], both, l2)
    p_val = head_scores((hmu, hsd, hw, hb), full["val faces"])
    n_val = head_scores((hmu, hsd, hw, hb), full["val non-faces"])
    h_thr = rule_threshold(p_val[good])
    fold = np.random.default_rng(0).permutation(len(hard)) % 5
    oof = np.zeros(len(hard))
    for k in range(5):
        fmu, fsd, fw, fb = fit_head(full["fit faces"], np.concatenate([full["fit non-faces"], hard[fold != k]]), l2)
        oof[fold == k] = head_scores((fmu, fsd, fw, fb), hard[fold == k])
    t995 = np.quantile(p_val, 1 - RECALL)
    print(f"- tried: the same head fitted with them as non-faces: threshold by the rule {h_thr:.2f} "
          f"({p_val[good].min():.3f}), {int((n_val >= h_thr).sum())}/{len(n_val)} validation non-faces and "
          f"{int((oof >= h_thr).sum())}/{len(hard)} hard negatives (out of fold) pass; at 99.5 % recall ({t995:.3f}) "
          f"{int((n_val >= t995).sum())} and {int((oof >= t995).sum())}")
    head, w, b = animal_rule(full, sets, good, (mu, sd, w, b), chosen, head, l2, args.n_fit)
    top = np.argsort(-np.abs(w))[:6]
    print(f"\nhead: {len(w)} weights (standardised features), the largest "
          + ", ".join(f"{embedding_names[i]} {w[i]:+.3f}" for i in top) + f"; bias {b:.3f}, threshold {head.threshold}")
    heads = coefficient_heads(sets, good, kinds, {"embedding (the standard verifier)": (mu, sd, w, b, chosen)},
                              args.n_fit)
    if args.fit:
        chosen_head = heads.get(args.head, head)
        out = args.out or {"embedding": DEFAULT_HEAD_PATH, "coefficients": STRICT_HEAD_PATH}.get(args.head)
        if out is None:
            raise SystemExit(f"--head {args.head} is no verifier of the package: name the file with --out")
        out.write_text(chosen_head.to_json() + "\n")
        print(f"wrote the {args.head} head to {out}")


if __name__ == "__main__":
    main()
