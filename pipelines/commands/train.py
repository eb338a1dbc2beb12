"""``stylerec train``: fit the style-preference model on a log and save it with its id maps.

The nightly job trains inside its run folder; this command is the same fit
outside a run, for trying a log or parameters by hand.  ``--warm-start DIR``
continues from a model this command (or a nightly run) saved in DIR: the id
maps are loaded from there and only appended to, so old users and items keep
their rows and the fit starts from the previous factors.

Output in ``--out DIR``: ``model.npz`` + ``model.json`` (``StylePreferenceModel.save``),
``user_map.json`` and ``item_map.json`` (``IdMap.save``), the same names as a
nightly run folder, so either can be the next ``--warm-start``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.commands.evaluate import add_log_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    p = subparsers.add_parser(
        "train",
        help="fit the style-preference model on a log and save it",
        description=(
            "Build the user x item confidence matrix from --logs, fit StylePreferenceModel "
            "(with item style codes when --item-codes is given), and write model.npz, "
            "model.json, user_map.json and item_map.json to --out."
        ),
    )
    add_log_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the model and id maps")
    p.add_argument("--warm-start", metavar="DIR",
                   help="folder of a previous model (its id maps are kept and extended)")
    p.add_argument("--factors", type=int, help="latent factors (default: the model's)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default: the model's)")
    p.add_argument("--half-life-days", type=float,
                   help="time decay of event weights (default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, build interactions on the (warm-start) id maps, fit, save."""
    from pipelines.commands.evaluate import load_item_codes, load_log, load_style_codes
    from recsys.fit_inputs import FitInputs
    from recsys.model import StylePreferenceModel
    from recsys.run_bundle import MODEL, MODEL_FILES, RunBundle

    events = load_log(args.logs, args.fmt)
    codes = load_item_codes(args.item_codes)
    user_map = item_map = init = None
    if args.warm_start:
        prev = RunBundle.open(args.warm_start)
        for name in prev.missing(MODEL_FILES):
            raise FileNotFoundError(f"--warm-start {prev.root}: missing {name}")
        user_map, item_map = prev.read_id_map("user"), prev.read_id_map("item")
        init = prev.path(MODEL)
    params: dict[str, object] = {"seed": args.seed}
    if args.factors:
        params["factors"] = args.factors
    if args.epochs:
        params["epochs"] = args.epochs
    inputs = FitInputs.from_events(
        events, user_map=user_map, item_map=item_map, half_life_days=args.half_life_days,
        item_codes=codes, style_codes=load_style_codes(args.item_codes) or None,
    )
    inter = inputs.interactions
    fit_inputs = inputs.fit_kwargs()
    model = StylePreferenceModel(**params).fit(inter, init_from=init, **fit_inputs)
    out = Path(args.out)
    RunBundle.create(out).write_model(model, inter.user_map.ids, inter.item_map.ids)
    summary = {
        "out": str(out),
        "users": len(inter.user_map),
        "items": len(inter.item_map),
        "nnz": int(inter.matrix.nnz),
        "item_codes": codes is not None,
        "style_events": int(len(fit_inputs.get("style_events", ()))),
        "warm_start": init is not None,
        "epochs_run": len(getattr(model, "history_", []) or []),
        "fit_seconds": round(float(getattr(model, "fit_seconds_", 0.0)), 3),
    }
    print(json.dumps(summary))
    return 0
