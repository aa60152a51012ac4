"""The face verifier's O-Net fine-tuned with the signers' faces among its faces, judged on a new validation set.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/verifier_signers.py --cache FILE.npz \\
        --extra-cache FILE2.npz [--save DIR] [--write DIR]

``benchmarks/verifier_onet.py`` fine-tunes O-Net against hands, background and animals; its model missed faces of
held-out photos whose signer's hands were among its non-faces (docs/experiments/wild.md, "Animal faces"). Here the
faces the shipped pipeline keeps at confidence >= 0.5 on the fit photos of ``SubhiH/HandsDataset`` (the signers'
own faces) join the fit faces, both for the fine-tuning (seeds 0, 1, 2, their weights averaged) and for the head.
The candidate is judged on rows no earlier choice saw (``benchmarks/data/verifier-v2.tsv``): the faces the shipped
pipeline returns on photos of masked and unmasked faces, and FaceBoxes' proposals on cat and dog photos; its
threshold by rule R (the 0.5 % quantile of its confidence on those faces, rounded down to 0.05). ``--write DIR``
writes the averaged O-Net (``onet-verifier.pt``) and its head (``face-verifier.json``) to DIR. Nothing else is
written.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import verifier_onet as O
import verifiers as V

from mfirrn.geometry.crop import roi_iou
from mfirrn.inference.pipeline import read_image
from mfirrn.inference.verify import CUES, EMBEDDING, VerifierHead
from mfirrn.io.assets import fetch_asset, read_asset_table

EXTRA = ("fit signers", "v2 faces", "v2 animals")


def signer_faces(rec, shipped: VerifierHead, mean, std) -> list[dict]:
    """The best face the shipped pipeline keeps at confidence >= 0.5 on each fit hand photo, its centre in no hand."""
    out = []
    for asset, row in read_asset_table(V.DATA / "verifier.tsv"):
        if row["role"] != "hands" or row["split"] != "train":
            continue
        img = read_image(fetch_asset(asset))
        found = rec.detector(img)
        boxes = found[found[:, 4] > 0.5, :4] if len(found) else found
        hands = np.array(json.loads(row["labels"])["hands"], np.float64).reshape(-1, 4)
        best = None
        for c in V.candidate(rec, img, boxes, mean, std) if len(boxes) else []:
            conf = float(shipped(np.array([[c[f] for f in shipped.names]]))[0])
            cx, cy = c["centre"]
            if conf >= 0.5 and not any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in hands):
                if best is None or conf > best[0]:
                    best = (conf, c)
        if best is not None:
            out.append(best[1])
    return out


def v2_photos(rec, role: str):
    """``(row, image, FaceBoxes' boxes (K, 5))`` of each photo of the new validation rows with this ``role``."""
    for asset, row in read_asset_table(V.DATA / "verifier-v2.tsv"):
        if row["role"] == role:
            img = read_image(fetch_asset(asset))
            yield row, img, rec.detector(img)


def v2_faces(rec, shipped: VerifierHead, mean, std) -> list[dict]:
    """The faces the shipped pipeline returns on the ``faces`` photos of the new validation rows (FaceBoxes > 0.5,
    shipped confidence >= its threshold)."""
    out = []
    for _, img, found in v2_photos(rec, "faces"):
        boxes = found[found[:, 4] > 0.5, :4] if len(found) else found
        for c in V.candidate(rec, img, boxes, mean, std) if len(boxes) else []:
            if shipped(np.array([[c[f] for f in shipped.names]]))[0] >= shipped.threshold:
                out.append(c)
    return out


def v2_animals(rec, mean, std) -> list[dict]:
    """FaceBoxes' proposals >= 0.3 (at most 5) on the ``animals`` photos of the new validation rows, without those
    that show a human face."""
    out = []
    for row, img, found in v2_photos(rec, "animals"):
        boxes = found[found[:, 4] >= V.ANIMAL_PROPOSAL][:V.ANIMALS_PER_PHOTO, :4] if len(found) else found
        human = np.array(json.loads(row["labels"])["human"], np.float64).reshape(-1, 4)
        if len(human) and len(boxes):
            boxes = boxes[[not (roi_iou(human, b[None]) > 0.5).any() for b in boxes]]
        out += V.candidate(rec, img, boxes, mean, std) if len(boxes) else []
    return out


def extra_sets(n_fit: int, datasets: Path) -> dict[str, dict[str, np.ndarray]]:
    """The three extra sets in the layout of ``verifier_onet.collect``."""
    shipped = VerifierHead.load()
    return O.collect(n_fit, datasets, builders={
        "fit signers": lambda rec, mean, std: signer_faces(rec, shipped, mean, std),
        "v2 faces": lambda rec, mean, std: v2_faces(rec, shipped, mean, std),
        "v2 animals": v2_animals})


def fine_tuning_parser(doc: str, extra_cache: str, *caches: tuple[str, str]) -> argparse.ArgumentParser:
    """The options of a fine-tuning script (this one's and ``verifier_sources.py``'s): the data, the run, the cached
    sets (``--cache``, ``--extra-cache`` described as ``extra_cache``, then each ``(option, help)`` of ``caches``), the
    seeds' weights and the written result."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--datasets", default=os.environ.get("MFIRRN_DATASETS", "../shared/datasets"))
    ap.add_argument("--n-fit", type=int, default=9000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", default="0,1,2")
    for option, text in (("--cache", "verifier_onet.py's sets (reused when it exists)"),
                         ("--extra-cache", extra_cache), *caches):
        ap.add_argument(option, default=None, metavar="FILE.npz", help=text)
    ap.add_argument("--save", default=None, metavar="DIR", help="each seed's fine-tuned O-Net (read when it exists)")
    ap.add_argument("--write", default=None, metavar="DIR", help="write the averaged O-Net and its head to DIR")
    return ap


def main() -> None:
    args = fine_tuning_parser(__doc__, "the signers' faces and the new rows").parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.time()
    base = O.load_or_collect(args.cache, O.SETS, lambda: O.collect(args.n_fit, Path(args.datasets)), args.n_fit)
    extra = O.load_or_collect(args.extra_cache, EXTRA, lambda: extra_sets(args.n_fit, Path(args.datasets)), args.n_fit)
    sets = {**base, **extra}
    print(", ".join(f"{k}: {len(v['x'])}" for k, v in sets.items()) + f"; {time.time() - t0:.0f} s")
    train = dict(sets)
    train["fit faces"] = {j: np.concatenate([sets["fit faces"][j], sets["fit signers"][j]]) for j in ("x", "features")}
    states = [O.seed_state(train, args.epochs, seed, args.save,
                           f"onet-signers-seed{seed}-n{args.n_fit}-epochs{args.epochs}.pt")
              for seed in (int(v) for v in args.seeds.split(","))]
    soup = {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]}
    net = O.load_mtcnn_net("onet", "cpu")
    net.load_state_dict(soup)
    tuned = {k: O.onet_features(net.eval(), v) for k, v in sets.items()}
    pos = np.concatenate([tuned["fit faces"], tuned["fit signers"]])
    neg = np.concatenate([tuned["fit non-faces"], tuned["fit animals"]])
    l2 = V.cross_validated_l2(pos, neg)
    mu, sd, w, b = V.fit_head(pos, neg, l2)
    faces, animals = (V.head_scores((mu, sd, w, b), tuned[k]) for k in ("v2 faces", "v2 animals"))
    threshold = V.quantile_threshold(faces)
    shipped = VerifierHead.load()
    s_faces, s_animals = (shipped(sets[k]["features"]) for k in ("v2 faces", "v2 animals"))
    print(f"\nNew validation rows: {len(faces)} faces the shipped pipeline returns, {len(animals)} animal proposals")
    print("| verifier | threshold | faces below it | animal proposals passing |\n|---|---:|---:|---:|")
    print(f"| the shipped verifier | {shipped.threshold:.2f} | {int((s_faces < shipped.threshold).sum())}/{len(faces)} "
          f"| {int((s_animals >= shipped.threshold).sum())}/{len(animals)} |")
    print(f"| C2 (signers' faces among the faces; seeds {args.seeds} averaged; head L2 {l2:g}), threshold by R | "
          f"{threshold:.2f} ({np.quantile(faces, 0.005):.3f}) | {int((faces < threshold).sum())}/{len(faces)} | "
          f"{int((animals >= threshold).sum())}/{len(animals)} |")
    for name, p in (("new faces", faces), ("new animal proposals", animals)):
        print(f"C2 on the {name}: quantiles 0.5 / 1 / 5 / 50 %: "
              f"{' / '.join(f'{v:.3f}' for v in np.quantile(p, [0.005, 0.01, 0.05, 0.5]))}; "
              f"at least 0.5: {(p >= 0.5).mean():.1%}")
    passed = threshold >= 0.05 and (animals >= threshold).sum() <= (s_animals >= shipped.threshold).sum() / 2
    print(f"checks (1) and (2): {'passed' if passed else 'failed'}")
    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(soup, out / "onet-verifier.pt")
        note = (f"benchmarks/verifier_signers.py: logistic fit (L2 {l2:g}) on {len(pos)} faces (AFLW and the signers') "
                f"and {len(neg)} non-faces, on the features of O-Net fine-tuned with them (seeds {args.seeds} "
                f"averaged); threshold: rule R on the faces of verifier-v2.tsv")
        head = VerifierHead(CUES + EMBEDDING, tuple(map(float, mu)), tuple(map(float, sd)), tuple(map(float, w)),
                            float(b), threshold, note=note)
        (out / "face-verifier.json").write_text(
            json.dumps({**json.loads(head.to_json()), "onet": "onet-verifier.pt"}, indent=1) + "\n")
        print(f"wrote {out / 'onet-verifier.pt'} and {out / 'face-verifier.json'}")
    print(f"\n{time.time() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
