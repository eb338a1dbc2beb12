"""Quality and fit time of the style-preference model side by side with its peers.

Three logs, one harness (``recsys.holdout.run_holdout``: same split, same
exclusion of seen items, same metrics for every model), ratios printed:

* ``../shared/data/movielens/ratings.csv``, ``last:10`` (issue 4's acceptance
  command); ``--seeds`` refits our model with other seeds to show its spread;
* the default demo world (generated, no images), ``last:2``, with the planted
  proxy codes of items and styles.  Besides the ranking table it prints how much
  any model *can* gain over popularity on this world (NDCG@10 of the planted
  taste itself), and the planted-style figures of the acceptance (recall@3 of
  each heavy shopper's true top-3 styles, Spearman of a never-shown style) for
  our model, the content-only baseline and an estimator that knows the whole
  click model except each shopper's taste (a per-shopper MAP fit: an upper
  reference, not a competitor);
* a generated latent-factor log (``bench_recsys_logs.py``: 20k users, 5k items,
  400k events), ``last:5``.

    python benchmarks/bench_recsys.py                 # all three
    python benchmarks/bench_recsys.py --only demo --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recsys_logs import generate_log  # noqa: E402

from recsys.baselines import ContentRecommender, PopularityRecommender  # noqa: E402
from recsys.evaluation import column_spearman, evaluate_scores, truth_recall_at_k  # noqa: E402
from recsys.fit_inputs import align_item_codes, style_event_array  # noqa: E402
from recsys.holdout import run_holdout  # noqa: E402
from recsys.interactions import IdMap, build_interactions, split_events  # noqa: E402
from recsys.model import StylePreferenceModel  # noqa: E402

PEERS = ("als", "bpr", "ease", "popularity", "content")


def _table(name: str, result, extra_seeds: dict[int, float]) -> dict[str, float]:
    print(f"\n== {name}: holdout {result.holdout}, {result.n_test_users} test users, "
          f"{result.n_users} users x {result.n_items} items in train")
    for model, f in result.models.items():
        print(f"  {model:10s} NDCG@10 {f['ndcg@10']:.4f} [{f['ndcg@10_low']:.4f}, "
              f"{f['ndcg@10_high']:.4f}]  recall@10 {f['recall@10']:.4f}  "
              f"fit {f['fit_seconds']:6.2f} s")
    ours = result.models["stylerec"]["ndcg@10"]
    ratios = {}
    for peer in PEERS:
        if peer in result.models:
            ratios[peer] = ours / max(result.models[peer]["ndcg@10"], 1e-12)
    print("  ratios stylerec / peer (NDCG@10): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    if extra_seeds:
        vals = list(extra_seeds.values())
        print("  stylerec over seeds: " + ", ".join(f"{s}: {v:.4f}" for s, v in extra_seeds.items())
              + f"  (mean {np.mean(vals):.4f}; / EASE {np.mean(vals) / result.models.get('ease', {'ndcg@10': np.nan})['ndcg@10']:.3f})")
    return ratios


def _seed_spread(events: pd.DataFrame, holdout: str, seeds: list[int], **kw) -> dict[int, float]:
    out = {}
    for s in seeds:
        r = run_holdout(events, holdout, models=["stylerec"], seed=s, n_bootstrap=10, **kw)
        out[s] = r.models["stylerec"]["ndcg@10"]
    return out


def movielens(seeds: list[int]) -> dict:
    from data.loading import load_events

    path = ROOT.parent / "shared" / "data" / "movielens" / "ratings.csv"
    events = load_events(path, "movielens").events
    result = run_holdout(events, "last:10")
    spread = _seed_spread(events, "last:10", [s for s in seeds if s != 0])
    spread = {0: result.models["stylerec"]["ndcg@10"], **spread} if seeds else {}
    ratios = _table("MovieLens (shared, even users)", result, spread)
    return {"models": result.to_dict()["models"], "ratios": ratios, "seeds": spread}


def _oracle_ndcg(world, holdout: str) -> tuple[float, float]:
    """NDCG@10 of ranking by the planted expected clicks, personal and population-mean."""
    from demo.shoppers import sigmoid

    t, cm = world.truth, world.click_model
    train, test = split_events(world.events, holdout)
    inter = build_interactions(train)
    X = inter.positives()
    uidx = np.array([world.index("user")[u] for u in inter.user_map.ids])
    iidx = np.array([world.index("item")[i] for i in inter.item_map.ids])
    expo = np.exp(t["item_popularity"][iidx])
    base = t["item_popularity"][iidx][None]

    def planted(users: np.ndarray) -> np.ndarray:
        s = base + cm.beta * t["user_taste"][uidx[users]] @ t["item_latent"][iidx].T
        return expo[None] * sigmoid(cm.b0 + s)

    mean = planted(np.arange(X.shape[0])).mean(axis=0)
    test_users, inverse = np.unique(test["user_id"].astype(str).to_numpy(), return_inverse=True)
    users = inter.user_map.indices(test_users)
    pairs = pd.DataFrame({"u": inverse, "i": inter.item_map.indices(test["item_id"].astype(str))})
    pairs = pairs.drop_duplicates().sort_values("u", kind="stable")
    cuts = np.searchsorted(pairs["u"].to_numpy(), np.arange(1, len(test_users)))
    relevant = [np.asarray(r, np.int64) for r in np.split(pairs["i"].to_numpy(), cuts)]
    pop = PopularityRecommender().fit(X).popularity_
    out = []
    for fn in (planted, lambda u: np.broadcast_to(mean, (len(u), len(mean)))):
        ev = evaluate_scores(fn, X, relevant, users, k=10, fallback_scores=pop, n_boot=10)
        out.append(ev.aggregate["ndcg@10"])
    return out[0], out[1]


def _taste_map(world, heavy: np.ndarray) -> np.ndarray:
    """Per shopper, the MAP taste under the *known* click model (all but the taste known).

    Logistic likelihood of every view (clicked or not) with the planted item
    popularity, item latents, style latents and click-model weights, and the
    population's taste distribution as a Gaussian prior.  An upper reference for
    what any log-based estimator can recover, not a method to ship.
    """
    from scipy.optimize import minimize

    t, cm = world.truth, world.click_model
    ev = world.events
    u = ev["user_id"].map(world.index("user")).to_numpy()
    i = ev["item_id"].map(world.index("item")).to_numpy()
    s = ev["style_id"].map(world.index("style")).fillna(-1).astype(int).to_numpy()
    kind = ev["event_type"].to_numpy()
    frame = pd.DataFrame({"u": u, "i": i, "s": s})
    views = frame[kind == "view"].value_counts().rename("v")
    clicks = frame[kind == "click"].value_counts().rename("c")
    df = pd.concat([views, clicks], axis=1).fillna(0).reset_index()
    df["c"] = np.minimum(df["c"], df["v"])
    groups = dict(tuple(df.groupby("u")))
    L = t["style_latent"]
    mu = t["user_taste"].mean(axis=0)
    P = np.linalg.inv(np.cov(t["user_taste"].T))
    out = np.zeros((len(heavy), L.shape[1]))
    for n, user in enumerate(heavy):
        d = groups.get(user)
        if d is None:
            out[n] = mu
            continue
        ii, ss = d["i"].to_numpy(), d["s"].to_numpy()
        vv, cc = d["v"].to_numpy(), d["c"].to_numpy()
        F = cm.beta * t["item_latent"][ii] + cm.alpha * np.where(
            ss[:, None] >= 0, L[np.maximum(ss, 0)], 0.0)
        off = cm.b0 + t["item_popularity"][ii]

        def f(x: np.ndarray, F=F, off=off, vv=vv, cc=cc) -> tuple[float, np.ndarray]:
            z = off + F @ x
            p = 1.0 / (1.0 + np.exp(-z))
            nll = -(cc * np.log(p + 1e-12) + (vv - cc) * np.log(1 - p + 1e-12)).sum()
            r = x - mu
            return nll + 0.5 * r @ P @ r, -F.T @ (cc - vv * p) + P @ r

        out[n] = minimize(f, mu.copy(), jac=True, method="L-BFGS-B").x
    return out @ L.T


def demo(seeds: list[int]) -> dict:
    from demo import WorldConfig, generate_world

    with tempfile.TemporaryDirectory() as tmp:
        world = generate_world(tmp, WorldConfig(write_images=False))
    t = world.truth
    item_codes = dict(zip(t["item_ids"].tolist(), t["item_codes"], strict=True))
    style_codes = dict(zip(t["style_ids"].tolist(), t["style_codes"], strict=True))
    result = run_holdout(world.events, "last:2", item_codes=item_codes, style_codes=style_codes)
    spread = _seed_spread(world.events, "last:2", [s for s in seeds if s != 0],
                          item_codes=item_codes, style_codes=style_codes)
    spread = {0: result.models["stylerec"]["ndcg@10"], **spread} if seeds else {}
    ratios = _table("demo world (default, no images)", result, spread)
    planted, mean = _oracle_ndcg(world, "last:2")
    print(f"  planted taste as the ranking: NDCG@10 {planted:.4f}; planted population mean "
          f"(no personalisation) {mean:.4f}; popularity {result.models['popularity']['ndcg@10']:.4f}"
          f" -> knowing every taste gains {planted / mean - 1:+.1%} over the population ranking")

    # Planted styles: fit on the whole log, users with >= 20 events.
    inter = build_interactions(world.events)
    codes = align_item_codes(item_codes, inter.item_map)
    style_events = style_event_array(world.events, IdMap(t["style_ids"].tolist()),
                                     inter.user_map, inter.item_map)
    t0 = time.perf_counter()
    model = StylePreferenceModel(show_progress=False).fit(
        inter, item_codes=codes, style_codes=t["style_codes"], style_events=style_events)
    fit_s = time.perf_counter() - t0
    counts = world.events["user_id"].astype(str).value_counts()
    heavy_ids = counts[counts >= 20].index.to_numpy()
    users = inter.user_map.indices(heavy_ids)
    heavy = np.array([world.index("user")[u] for u in heavy_ids])
    truth = t["affinity"][heavy]
    hidden = np.isin(t["style_ids"], t["holdout_style_ids"])
    content = ContentRecommender(codes).fit(inter.positives())
    estimators = {
        "stylerec": model.user_style_affinity(users, t["style_codes"]),
        "content": content.style_scores(users, t["style_codes"]),
        "known-click-model MAP": _taste_map(world, heavy),
    }
    print(f"\n  planted styles, {len(users)} shoppers with >= 20 events (stylerec fit {fit_s:.1f} s):")
    styles = {}
    for name, aff in estimators.items():
        rec = float(truth_recall_at_k(aff, truth, 3, mask=hidden).mean())
        rho = [float(x) for x in column_spearman(aff[:, hidden], truth[:, hidden])]
        styles[name] = {"recall@3": rec, "spearman_never_shown": rho}
        print(f"  {name:22s} recall@3 of true top-3 {rec:.3f}   Spearman, never-shown style "
              + ", ".join(f"{r:.3f}" for r in rho))
    gap = styles["stylerec"]["recall@3"] - styles["content"]["recall@3"]
    print(f"  stylerec - content recall@3: {gap:+.3f} (acceptance: >= 0.8 and >= +0.1; "
          "Spearman >= 0.7)")
    return {"models": result.to_dict()["models"], "ratios": ratios, "seeds": spread,
            "planted_ndcg": planted, "population_ndcg": mean, "styles": styles}


def generated(seeds: list[int]) -> dict:
    events = generate_log(20_000, 5_000, 400_000, seed=0).to_frame()
    result = run_holdout(events, "last:5")
    spread = _seed_spread(events, "last:5", [s for s in seeds if s != 0])
    spread = {0: result.models["stylerec"]["ndcg@10"], **spread} if seeds else {}
    ratios = _table("generated log (20k users, 5k items, 400k events)", result, spread)
    return {"models": result.to_dict()["models"], "ratios": ratios, "seeds": spread}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("movielens", "demo", "generated"))
    p.add_argument("--seeds", default="", help="extra seeds for our model, e.g. 0,1,2,3,4,5")
    p.add_argument("--json", action="store_true", help="end with one JSON line of all figures")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = {}
    for name, fn in (("movielens", movielens), ("demo", demo), ("generated", generated)):
        if args.only in (None, name):
            out[name] = fn(seeds)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
