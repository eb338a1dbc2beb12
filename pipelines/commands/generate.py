"""``stylerec generate``: write a seeded demo world (catalogue, styles, logs, planted truth).

A command of its own so that a new user can get realistic-looking input for every
other command without any private data, and so that tests and benchmarks can make
worlds of any size from the shell.  The world generator (numpy, pandas, PIL) is
imported when the command runs, so ``stylerec --help`` stays instant; the defaults
shown in the help are :class:`demo.WorldConfig`'s (a test keeps them equal).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

#: ``WorldConfig()``'s defaults, spelled out so that building the parser imports nothing
#: heavy; ``tests/pipelines/test_cli_help.py`` asserts they equal the dataclass's.
WORLD_DEFAULTS: dict[str, int] = {
    "seed": 0,
    "n_users": 2000,
    "n_items": 200,
    "n_styles": 12,
    "image_size": 512,
    "target_events": 100_000,
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` sub-command."""
    d = WORLD_DEFAULTS
    p = subparsers.add_parser(
        "generate",
        help="generate a seeded demo world (images, event logs, planted truth)",
        description=(
            "Write a demo shop to DIR: items.csv, styles.csv, events.parquet, truth.npz, "
            "truth.json, and unless --no-images the product photos (images/), their exact "
            "masks (masks/) and the style images (styles/). Same seed, same files."
        ),
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument(
        "--seed", type=int, default=d["seed"], help="random seed (default %(default)s)"
    )
    p.add_argument("--users", type=_positive, default=d["n_users"],
                   help="number of shoppers (default %(default)s)")
    p.add_argument("--items", type=_positive, default=d["n_items"],
                   help="number of products (default %(default)s)")
    p.add_argument("--styles", type=_positive, default=d["n_styles"],
                   help="number of styles (default %(default)s)")
    p.add_argument(
        "--events",
        type=_positive,
        default=None,
        help=(
            f"approximate number of log events (default: "
            f"{d['target_events'] // d['n_users']} per user)"
        ),
    )
    p.add_argument(
        "--image-size", type=_positive, default=d["image_size"],
        help="image side in pixels (default %(default)s)"
    )
    p.add_argument(
        "--no-images", action="store_true", help="skip the images (logs and truth only, fast)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the world and print where it went and what it holds."""
    from demo import WorldConfig, generate_world

    defaults = WorldConfig()
    events = args.events
    if events is None:  # keep the default world's events per user at any size
        events = max(args.users, defaults.target_events * args.users // defaults.n_users)
    config = WorldConfig(
        seed=args.seed,
        n_users=args.users,
        n_items=args.items,
        n_styles=args.styles,
        target_events=events,
        image_size=args.image_size,
        write_images=not args.no_images,
    )
    t0 = time.perf_counter()
    world = generate_world(args.out, config)
    elapsed = time.perf_counter() - t0
    counts = world.events["event_type"].value_counts()
    print(f"demo world written to {world.dir.resolve()}")
    print(
        f"users={config.n_users} items={len(world.items)} styles={len(world.styles)} "
        f"events={len(world.events)} "
        + " ".join(
            f"{k}={int(counts.get(k, 0))}" for k in ("view", "click", "add_to_cart", "purchase")
        )
    )
    images = 2 * len(world.items) + len(world.styles) if config.write_images else 0
    print(f"images={images} seconds={elapsed:.1f}")
    return 0
