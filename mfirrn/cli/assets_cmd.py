"""``mfirrn assets list | fetch [NAME...|--all] | verify``."""

from __future__ import annotations

import argparse

from mfirrn.cli.common import fail


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assets",  # its one-line help: mfirrn.cli.COMMANDS
                       description="Assets are fetched from their canonical source (or $MFIRRN_ASSET_MIRROR) "
                                   "into $MFIRRN_CACHE, checksum-verified.")
    asub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    asub.add_parser("list", help="registry with cache status")
    f = asub.add_parser("fetch", help="fetch assets into the cache")
    f.add_argument("names", nargs="*", metavar="NAME",
                   help="assets to fetch, by the names `mfirrn assets list` shows (e.g. bfm-u-shp)")
    f.add_argument("--all", action="store_true", help="fetch every registered asset")
    v = asub.add_parser("verify", help="check cached files against their sha256")
    v.add_argument("names", nargs="*", metavar="NAME",
                   help="assets to check, by the names `mfirrn assets list` shows (default: every asset)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfirrn.io import assets

    if args.action == "list":
        print(f"cache: {assets.cache_dir()}   mirror: {assets.mirror_dir() or '(none; set MFIRRN_ASSET_MIRROR)'}")
        print(f"{'name':<24} {'status':<8} {'size':>10}  licence / source")
        for name, a in assets.REGISTRY.items():
            print(f"{name:<24} {assets.status(name):<8} {a.size:>10}  {a.licence}\n{'':<45}{a.url}")
        return 0
    names = list(args.names)
    try:
        for n in names:
            assets.get_asset(n)
    except assets.AssetError as e:
        return fail(str(e))
    if args.action == "fetch":
        if not names and not args.all:
            return fail("name the assets to fetch, or pass --all (see `mfirrn assets list`)")
        failed = 0
        for n in names or list(assets.REGISTRY):
            try:
                print(f"{n:<24} ok  {assets.fetch(n)}")
            except assets.AssetError as e:
                failed += 1
                fail(str(e))
        return 2 if failed else 0
    results = assets.verify(names or None)
    for n, s in results.items():
        print(f"{n:<24} {s}")
    bad = [n for n, s in results.items() if s == "corrupt"]
    if bad:
        return fail(f"corrupt cache entries: {', '.join(bad)}; run `mfirrn assets fetch {' '.join(bad)}` to replace them", 1)
    return 0
