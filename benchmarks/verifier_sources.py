"""The face verifier's O-Net fine-tuned on faces and animals of many sources (C5, C6), judged on new validation rows.

    MFIRRN_ASSET_MIRROR=... MFIRRN_DATASETS=... python benchmarks/verifier_sources.py [--candidate c5|c6] \\
        --cache FILE.npz --extra-cache FILE2.npz [--more-cache FILE3.npz] [--save DIR] [--write DIR]

The recipe of ``benchmarks/verifier_signers.py`` (C2) with more fit data (docs/experiments/wild.md, "A fifth
candidate", "A sixth candidate"; :data:`CANDIDATES`). C5: masked faces (the ``fit`` rows of ``masked-faces.tsv``) and
the human faces of the ``fit`` people photos of ``benchmarks/data/verifier-v3.tsv`` join the AFLW and signers' faces;
the animal proposals of ``verifier-v2.tsv`` and of the ``fit`` animal photos of ``verifier-v3.tsv`` join the fit
animals; judged on the ``val`` rows of ``verifier-v3.tsv``. C6: no hands in the fine-tuning (they stay non-faces of
the head), all of ``verifier-v3.tsv``, the hair photos' ``train`` rows and the ``fit`` rows of ``verifier-v4.tsv``
among the fit data; judged on the ``val`` rows of ``verifier-v4.tsv``. Seeds 0, 1, 2 are fine-tuned and their
weights averaged; the logistic head is fitted on the averaged O-Net's features; its threshold is rule R on the
judging rows' faces that the shipped verifier keeps. Printed: checks 1 and 2 of the rule and the rows reported
beside them. ``--write DIR`` writes the averaged O-Net (``face-verifier-onet.pt``) and the head
(``face-verifier.json``, naming it) to DIR; nothing else is written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import verifier_onet as O
import verifier_signers as S
import verifiers as V

from mfirrn.inference.pipeline import read_image
from mfirrn.inference.verify import CUES, EMBEDDING, VerifierHead
from mfirrn.io.assets import fetch_asset, read_asset_table

EXTRA = ("fit signers", "fit masked", "val masked", "v2 faces", "v2 animals",
         "v3 fit faces", "v3 val faces", "v3 fit animals", "v3 val animals")
MORE = ("fit hands", "fit squares", "hair faces", "hair non-faces",
        "v4 fit faces", "v4 val faces", "v4 fit animals", "v4 val animals")
V5 = ("v5 val faces", "v5 val animals")
V6 = ("v6 val faces", "v6 val animals")
#: Each candidate's fit faces, fit non-faces of the fine-tuning and of the head, fit animals, and the rows that judge
#: it (docs/experiments/wild.md, "A fifth candidate", "A sixth candidate").
CANDIDATES = {
    "c5": dict(faces=("fit faces", "fit signers", "fit masked", "v3 fit faces"),
               tune_non_faces=("fit non-faces",), head_non_faces=("fit non-faces",),
               animals=("fit animals", "v2 animals", "v3 fit animals"), val="v3"),
    "c6": dict(faces=("fit faces", "fit signers", "fit masked", "v3 fit faces", "v3 val faces", "hair faces",
                      "v4 fit faces"),
               tune_non_faces=("fit squares", "hair non-faces"),
               head_non_faces=("fit hands", "fit squares", "hair non-faces"),
               animals=("fit animals", "v2 animals", "v3 fit animals", "v3 val animals", "v4 fit animals"), val="v4"),
}
#: C6b: C6's O-Net and head (read from its saved seeds), its threshold set on the rows of verifier-v5.tsv
CANDIDATES["c6b"] = dict(CANDIDATES["c6"], val="v5", seeds_of="c6")
#: C7: C6 with half of each batch's inputs degraded (faces and non-faces alike), all of v4 and v5 among its fit data;
#: judged on verifier-v6.tsv (val rows only)
CANDIDATES["c7"] = dict(CANDIDATES["c6"], faces=CANDIDATES["c6"]["faces"] + ("v4 val faces", "v5 val faces"),
                        animals=CANDIDATES["c6"]["animals"] + ("v4 val animals", "v5 val animals"), val="v6",
                        degrade=0.5)
ONET_FILE = "face-verifier-onet.pt"


def table_rows(table: str, role: str, split: str):
    """``(row, image)`` of each photo of ``benchmarks/data/<table>`` with this ``role`` and ``split``."""
    for asset, row in read_asset_table(V.DATA / table):
        if row["role"] == role and row["split"] == split:
            yield row, read_image(fetch_asset(asset))


def labelled_faces(rec, table: str, split: str, mean, std) -> list[dict]:
    """The labelled human faces of a table's ``split`` people photos, each through the pipeline from FaceBoxes'
    box."""
    out = []
    for row, img in table_rows(table, "faces", split):
        boxes = np.array(json.loads(row["labels"])["faces"], np.float64).reshape(-1, 4)
        for c in V.candidate(rec, img, boxes, mean, std) if len(boxes) else []:
            c.pop("landmarks")
            out.append(c)
    return out


def animal_proposals(rec, table: str, split: str, mean, std) -> list[dict]:
    """FaceBoxes' proposals >= 0.3 (at most 5 a photo) on a table's ``split`` animal photos (no person in them)."""
    out = []
    for _, img in table_rows(table, "animals", split):
        found = rec.detector(img)
        boxes = found[found[:, 4] >= V.ANIMAL_PROPOSAL][:V.ANIMALS_PER_PHOTO, :4] if len(found) else found
        for c in V.candidate(rec, img, boxes, mean, std) if len(boxes) else []:
            c.pop("landmarks")
            out.append(c)
    return out


def extra_sets(n_fit: int, datasets: Path) -> dict[str, dict[str, np.ndarray]]:
    """The extra sets in the layout of ``verifier_onet.collect``."""
    shipped = VerifierHead.load()
    return O.collect(n_fit, datasets, builders={
        "fit signers": lambda rec, mean, std: S.signer_faces(rec, shipped, mean, std),
        "fit masked": lambda rec, mean, std: V.masked_faces(rec, "fit", mean, std),
        "val masked": lambda rec, mean, std: V.masked_faces(rec, "val", mean, std),
        "v2 faces": lambda rec, mean, std: S.v2_faces(rec, shipped, mean, std),
        "v2 animals": S.v2_animals,
        **table_sets("v3", "verifier-v3.tsv")})


def table_sets(name: str, table: str) -> dict:
    """Builders of a table's four sets: ``<name> fit faces``, ``... val faces``, ``... fit animals``,
    ``... val animals``."""
    def faces(split):
        return lambda rec, mean, std: labelled_faces(rec, table, split, mean, std)

    def animals(split):
        return lambda rec, mean, std: animal_proposals(rec, table, split, mean, std)

    return {f"{name} {split} {kind}": (faces if kind == "faces" else animals)(split)
            for kind in ("faces", "animals") for split in ("fit", "val")}


def val_sets(name: str, names: tuple[str, ...], cache: Optional[str], n_fit: int,
             datasets: Path) -> dict[str, dict[str, np.ndarray]]:
    """The sets ``names`` of a table with ``val`` rows only (``verifier-<name>.tsv``), from ``cache`` when it exists."""
    builders = {k: v for k, v in table_sets(name, f"verifier-{name}.tsv").items() if k in names}
    return O.load_or_collect(cache, names, lambda: O.collect(n_fit, datasets, builders=builders), n_fit)


def hair_rows(rec, kind: str, mean, std) -> list[dict]:
    """The labelled ``kind`` (``faces`` or ``non_faces``) of the ``train`` rows of ``hair-photos.tsv``, each through
    the pipeline from its box."""
    out = []
    for asset, row in read_asset_table(V.DATA / "hair-photos.tsv"):
        boxes = np.array(json.loads(row["labels"]).get(kind, []), np.float64).reshape(-1, 4)
        if row["split"] == "train" and len(boxes):
            for c in V.candidate(rec, read_image(fetch_asset(asset)), boxes, mean, std):
                c.pop("landmarks")
                out.append(c)
    return out


def more_sets(n_fit: int, datasets: Path) -> dict[str, dict[str, np.ndarray]]:
    """C6's further sets: the fit hands and random squares apart, the hair photos' train rows, verifier-v4.tsv."""
    rng = np.random.default_rng(6)

    def non_faces(kind):
        return lambda rec, mean, std: [c for c in V.non_faces(rec, "train", mean, std, rng) if c["kind"] == kind]

    return O.collect(n_fit, datasets, builders={
        "fit hands": non_faces("hand"), "fit squares": non_faces("random"),
        "hair faces": lambda rec, mean, std: hair_rows(rec, "faces", mean, std),
        "hair non-faces": lambda rec, mean, std: hair_rows(rec, "non_faces", mean, std),
        **table_sets("v4", "verifier-v4.tsv")})


def joined(sets: dict, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The sets ``names`` as one (O-Net inputs and features concatenated)."""
    return {j: np.concatenate([sets[k][j] for k in names]) for j in ("x", "features")}


def main() -> None:
    ap = S.fine_tuning_parser(__doc__, "C5's extra sets (reused when it exists)",
                              ("--more-cache", "C6's further sets (reused when it exists)"),
                              ("--v5-cache", "C6b's rows (reused when it exists)"),
                              ("--v6-cache", "C7's rows (reused when it exists)"))
    ap.add_argument("--candidate", choices=tuple(CANDIDATES), default="c5",
                    help="c5, c6, c6b (C6 with its threshold on verifier-v5.tsv; needs C6's seeds in --save) or c7")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.time()
    cand, name = CANDIDATES[args.candidate], args.candidate.upper()
    datasets = Path(args.datasets)
    sets = {**O.load_or_collect(args.cache, O.SETS, lambda: O.collect(args.n_fit, datasets), args.n_fit),
            **O.load_or_collect(args.extra_cache, EXTRA, lambda: extra_sets(args.n_fit, datasets), args.n_fit)}
    if args.candidate != "c5":
        sets.update(O.load_or_collect(args.more_cache, MORE, lambda: more_sets(args.n_fit, datasets), args.n_fit))
    if args.candidate in ("c6b", "c7"):
        sets.update(val_sets("v5", V5, args.v5_cache, args.n_fit, datasets))
    if cand["val"] == "v6":
        sets.update(val_sets("v6", V6, args.v6_cache, args.n_fit, datasets))
    print(", ".join(f"{k}: {len(v['x'])}" for k, v in sets.items()) + f"; {time.time() - t0:.0f} s", flush=True)
    train = {"fit faces": joined(sets, cand["faces"]), "fit non-faces": joined(sets, cand["tune_non_faces"]),
             "fit animals": joined(sets, cand["animals"])}
    tuned_as = cand.get("seeds_of", args.candidate)
    states = [O.seed_state(train, args.epochs, seed, args.save,
                           f"onet-{tuned_as}-seed{seed}-n{args.n_fit}-epochs{args.epochs}.pt",
                           **({"degrade": cand["degrade"]} if "degrade" in cand else {}))
              for seed in (int(v) for v in args.seeds.split(","))]
    soup = {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]}
    net = O.load_mtcnn_net("onet", "cpu")
    net.load_state_dict(soup)
    tuned = {k: O.onet_features(net.eval(), v) for k, v in sets.items()}
    pos = np.concatenate([tuned[k] for k in cand["faces"]])
    neg = np.concatenate([tuned[k] for k in cand["head_non_faces"] + cand["animals"]])
    l2 = V.cross_validated_l2(pos, neg)
    fitted = V.fit_head(pos, neg, l2)
    new = {k: V.head_scores(fitted, tuned[k]) for k in sets}
    shipped = VerifierHead.load()
    old = {k: shipped(v["features"]) for k, v in sets.items()}
    val = cand["val"]
    # rule R's faces: the labelled val faces the shipped verifier keeps (all of them are reported too)
    kept = old[f"{val} val faces"] >= shipped.threshold
    for d in (new, old):
        d[f"{val} val faces kept"] = d[f"{val} val faces"][kept]
    threshold = V.quantile_threshold(new[f"{val} val faces kept"])
    print(f"\n{name}: {len(pos)} fit faces, {len(neg)} fit non-faces (of which animals "
          f"{sum(len(sets[k]['x']) for k in cand['animals'])}); head L2 {l2:g}; threshold by rule R {threshold:.2f} "
          f"(0.5 % quantile of the {int(kept.sum())} {val} val faces the shipped verifier keeps "
          f"{np.quantile(new[f'{val} val faces kept'], 0.005):.3f})")
    print(f"\n| rows | shipped verifier ({shipped.threshold:g}): below / passing | {name} at its threshold: below / "
          "passing |\n|---|---:|---:|")
    rows = [(f"{val} val faces kept", "faces below"), (f"{val} val faces", "faces below"),
            (f"{val} val animals", "passing"), ("v2 faces", "faces below"), ("val masked", "faces below"),
            ("val faces", "faces below"), ("val non-faces", "passing"), ("val animals", "passing")]
    for k, kind in rows:
        n = len(new[k])
        count = (lambda p, t: int((p < t).sum())) if kind == "faces below" else (lambda p, t: int((p >= t).sum()))
        print(f"| {k} ({kind}) | {count(old[k], shipped.threshold)}/{n} | {count(new[k], threshold)}/{n} |")
    for k in (f"{val} val faces kept", f"{val} val animals"):
        print(f"{name} on the {k}: quantiles 0.5 / 1 / 5 / 50 %: "
              f"{' / '.join(f'{v:.3f}' for v in np.quantile(new[k], [0.005, 0.01, 0.05, 0.5]))}")
    ok1 = threshold >= 0.05
    animals = f"{val} val animals"
    ok2 = (new[animals] >= threshold).sum() <= (old[animals] >= shipped.threshold).sum() / 2
    print(f"check 1 (R >= 0.05): {'passed' if ok1 else 'failed'}; check 2 (val animals at most half the shipped "
          f"verifier's): {'passed' if ok2 else 'failed'}")
    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(soup, out / ONET_FILE)
        mu, sd, w, b = fitted
        note = (f"benchmarks/verifier_sources.py --candidate {args.candidate}: logistic fit (L2 {l2:g}) on {len(pos)} "
                f"faces and {len(neg)} non-faces of many sources, on the features of O-Net fine-tuned with them (seeds "
                f"{args.seeds} averaged); threshold: rule R on the val faces of verifier-{val}.tsv the previous "
                "verifier keeps")
        head = VerifierHead(CUES + EMBEDDING, tuple(map(float, mu)), tuple(map(float, sd)), tuple(map(float, w)),
                            float(b), threshold, note=note)
        (out / "face-verifier.json").write_text(
            json.dumps({**json.loads(head.to_json()), "onet": ONET_FILE}, indent=1) + "\n")
        print(f"wrote {out / ONET_FILE} and {out / 'face-verifier.json'}")
    print(f"\n{time.time() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
