"""The HTTP front (recsys.serving.http, ``stylerec serve``) through FastAPI's TestClient.

Every answer is compared with the in-process service on the same run, so the
front cannot drift from the Python API; request validation is checked field by
field.  Skipped (with the reason) when the serve extra is not installed; the dev
extra installs it, so CI runs these.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx (serve extra)")

from fastapi.testclient import TestClient  # noqa: E402

from data.store import Store  # noqa: E402
from recsys.experiments.assignment import Experiment  # noqa: E402
from recsys.serving import MAX_CANDIDATES, PersonalizationService, RankedItem  # noqa: E402
from recsys.serving.http import create_app  # noqa: E402
from recsys.serving.synthetic import SyntheticRun, make_run  # noqa: E402

EXP = Experiment("restyle", {"control": 0.5, "treatment": 0.5}, salt="h1")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, SyntheticRun]:
    root = tmp_path_factory.mktemp("http")
    store = Store(f"sqlite:///{root / 'store.db'}")
    run = make_run(store, root, n_users=60, n_items=200, n_cold=5, render_fraction=0.4,
                   no_image_items=2, seed=11, tag="h")
    return store, run


@pytest.fixture(scope="module")
def svc(world: tuple[Store, SyntheticRun]) -> PersonalizationService:
    return PersonalizationService.from_store(world[0], experiments=[EXP])


@pytest.fixture(scope="module")
def client(svc: PersonalizationService) -> TestClient:
    with TestClient(create_app(svc)) as c:
        yield c


def _as_json(items: list[RankedItem]) -> list[dict[str, Any]]:
    return [{"item_id": r.item_id, "score": r.score, "image_uri": r.image_uri,
             "segment_id": r.segment_id, "style_ids": list(r.style_ids)} for r in items]


def _same(got: list[dict[str, Any]], want: list[RankedItem]) -> None:
    assert [g["item_id"] for g in got] == [w.item_id for w in want]
    assert [g["score"] for g in got] == pytest.approx([w.score for w in want], abs=1e-6)
    for g, w in zip(got, _as_json(want), strict=True):
        assert {k: v for k, v in g.items() if k != "score"} == {
            k: v for k, v in w.items() if k != "score"}


def test_rank_matches_the_service(client: TestClient, svc: PersonalizationService,
                                  world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    cands = run.item_ids[::4] + run.cold_item_ids + ["ghost"]
    for uid in (run.user_ids[0], run.user_ids[17], "newcomer"):
        r = client.post("/rank", json={"user_id": uid, "candidates": cands})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["run_id"] == run.run_id and body["user_id"] == uid
        _same(body["items"], svc.rank(uid, cands))
        # The answer says when it fell back: unknown user, unknown (unscored) candidates.
        assert body["cold_start"] is (uid == "newcomer")
        assert body["unknown_items"] == ["ghost"]
        assert "ghost" not in {i["item_id"] for i in body["items"]}
        assert len(body["items"]) == len(cands) - 1
    # k, experiment (control users get originals), integer ids.
    uid = run.user_ids[3]
    r = client.post("/rank", json={"user_id": uid, "candidates": cands, "k": 5,
                                   "experiment": "restyle"})
    _same(r.json()["items"], svc.rank(uid, cands, k=5, experiment=EXP))
    arms = EXP.assign(run.user_ids)
    control = run.user_ids[int(np.flatnonzero(arms == "control")[0])]
    items = client.post("/rank", json={"user_id": control, "candidates": run.item_ids,
                                       "experiment": "restyle"}).json()["items"]
    assert all(i["style_ids"] == [] and "renders-h" not in (i["image_uri"] or "") for i in items)
    # Integer ids are a client bug, not an id: 422 naming the field (README's promise).
    msg = _error(client.post("/rank", json={"user_id": 7, "candidates": [run.item_ids[0]]}),
                 "user_id")
    assert "must be a string, got integer 7" in msg
    _error(client.post("/rank", json={"user_id": "7", "candidates": [1, run.item_ids[0]]}),
           "candidates")


def test_duplicates_and_empty_candidates(client: TestClient, svc: PersonalizationService,
                                        world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    uid = run.user_ids[5]
    dup = run.item_ids[:5] + run.item_ids[:5]
    r = client.post("/rank", json={"user_id": uid, "candidates": dup})
    assert [i["item_id"] for i in r.json()["items"]] == [x.item_id for x in svc.rank(uid, dup)]
    assert len(r.json()["items"]) == 5
    r = client.post("/rank", json={"user_id": uid, "candidates": []})
    assert r.status_code == 200 and r.json() == {"run_id": run.run_id, "user_id": uid,
                                                 "cold_start": False, "unknown_items": [],
                                                 "items": []}


def test_recommend_matches_the_service(client: TestClient, svc: PersonalizationService,
                                       world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    for uid in (run.user_ids[2], "stranger"):
        body = client.post("/recommend", json={"user_id": uid}).json()
        _same(body["items"], svc.recommend(uid, 10))
        assert body["cold_start"] is (uid == "stranger") and body["unknown_items"] == []
        assert len(body["items"]) == 10
        body = client.post("/recommend", json={"user_id": uid, "k": 3, "exclude_seen": False,
                                               "experiment": "restyle"}).json()
        _same(body["items"], svc.recommend(uid, 3, exclude_seen=False, experiment=EXP))


def test_health(client: TestClient, world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "run_id": run.run_id, "users": 60, "items": 205,
                        "segments": 3, "renders": int(run.rendered.sum())}


def _error(r: Any, field: str) -> str:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    hit = [d for d in detail if field in [str(x) for x in d["loc"]]]
    assert hit, detail
    return " ".join(d["msg"] for d in hit)


@pytest.mark.parametrize("bad", [42, 1.5, None, True, ["u0000000"], {"id": 1}])
def test_wrong_user_id_types_are_422(client: TestClient, bad: Any) -> None:
    for path, extra in (("/rank", {"candidates": ["i000001"]}), ("/recommend", {})):
        msg = _error(client.post(path, json={"user_id": bad, **extra}), "user_id")
        assert "must be a string, got " in msg
        assert json.dumps(bad)[:20] in msg  # names the offending value as sent


def test_wrong_candidate_types_are_422(client: TestClient) -> None:
    msg = _error(client.post("/rank", json={"user_id": "u1", "candidates": ["i1", 2.5]}),
                 "candidates")
    assert "must be a string" in msg and "2.5" in msg
    r = client.post("/rank", json={"user_id": "u1", "candidates": ["i1", None]})
    assert [str(x) for x in r.json()["detail"][0]["loc"]] == ["body", "candidates", "1"]
    assert "valid list" in _error(client.post("/rank", json={"user_id": "u1",
                                                              "candidates": "i000001"}),
                                  "candidates")
    _error(client.post("/rank", json={"user_id": "u1"}), "candidates")  # missing
    too_many = [str(n) for n in range(MAX_CANDIDATES + 1)]
    assert "at most" in _error(client.post("/rank", json={"user_id": "u1",
                                                          "candidates": too_many}),
                               "candidates")


@pytest.mark.parametrize("bad", ["3", 2.0, True, -1])
def test_wrong_k_is_422(client: TestClient, bad: Any) -> None:
    _error(client.post("/rank", json={"user_id": "u1", "candidates": ["i1"], "k": bad}), "k")
    _error(client.post("/recommend", json={"user_id": "u1", "k": bad}), "k")


def test_other_bad_requests(client: TestClient) -> None:
    assert "Extra inputs" in _error(
        client.post("/rank", json={"user_id": "u1", "candidate": ["i1"], "candidates": []}),
        "candidate")
    _error(client.post("/recommend", json={"user_id": "u1", "exclude_seen": "yes"}),
           "exclude_seen")
    _error(client.post("/recommend", json={"user_id": "u1", "k": 0}), "k")
    _error(client.post("/recommend", json={"user_id": "u1", "experiment": 5}), "experiment")
    r = client.post("/rank", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.get("/rank").status_code == 405


def test_service_errors_become_422_not_500(svc: PersonalizationService) -> None:
    app = create_app(svc)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("run xyz: something the service refused")

    with TestClient(app) as c:
        orig = svc.rank_response
        svc.rank_response = broken  # type: ignore[method-assign]
        try:
            r = c.post("/rank", json={"user_id": "u", "candidates": ["i"]})
        finally:
            svc.rank_response = orig  # type: ignore[method-assign]
    assert r.status_code == 422 and "something the service refused" in r.text


def test_auto_refresh_serves_a_newly_published_run(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    a = make_run(store, tmp_path, n_users=20, n_items=40, seed=1, tag="a")
    svc = PersonalizationService.from_store(store)
    with TestClient(create_app(svc, refresh_interval_s=0.02)) as c:
        assert c.get("/health").json()["run_id"] == a.run_id
        b = make_run(store, tmp_path, n_users=20, n_items=40, seed=2, tag="b")
        deadline = time.monotonic() + 10
        while c.get("/health").json()["run_id"] != b.run_id and time.monotonic() < deadline:
            time.sleep(0.02)
        body = c.post("/rank", json={"user_id": b.user_ids[0], "candidates": b.item_ids}).json()
        assert body["run_id"] == b.run_id
        _same(body["items"], PersonalizationService.from_store(store).rank(b.user_ids[0],
                                                                           b.item_ids))
    assert svc._poller is None  # the app's shutdown stopped the poller


def test_stylerec_serve_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    from pipelines.cli import build_parser, main

    assert "serve" in build_parser().format_help()
    db = f"sqlite:///{tmp_path / 'store.db'}"
    run = make_run(Store(db), tmp_path, n_users=10, n_items=20, seed=3, tag="s")
    exps = tmp_path / "exps.json"
    exps.write_text(json.dumps([{"name": "restyle", "variants": {"control": 1.0}}]))
    seen: dict[str, Any] = {}

    def fake_run(app: Any, host: str, port: int, **kw: Any) -> None:
        seen["where"] = (host, port)
        seen["frozen"] = gc.get_freeze_count()  # serve freezes the loaded objects
        with TestClient(app) as c:
            seen["health"] = c.get("/health").json()
            seen["rank"] = c.post("/rank", json={"user_id": run.user_ids[0],
                                                 "candidates": run.item_ids,
                                                 "experiment": "restyle"}).json()
            seen["big"] = c.post("/rank", json={"user_id": "u", "candidates": ["i"] * 2000})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    try:
        assert main(["serve", "--db", db, "--port", "8123", "--experiments", str(exps),
                     "--max-body-bytes", "5000"]) == 0
    finally:
        gc.unfreeze()  # gc.freeze is process-wide: do not leave pytest's objects frozen
    assert seen["frozen"] > 0
    assert seen["where"] == ("127.0.0.1", 8123)
    assert seen["health"]["run_id"] == run.run_id
    # The experiment file's all-control split reaches the service: originals only.
    assert all(i["style_ids"] == [] for i in seen["rank"]["items"])
    assert run.run_id in capsys.readouterr().out
    assert seen["big"].status_code == 413  # --max-body-bytes reached the app
    assert not any(i["image_uri"].startswith("/") for i in seen["rank"]["items"])
    # Answers leave the machine: a server path as prefix is refused, a URL is fine.
    assert main(["serve", "--db", db, "--render-root", str(tmp_path / "renders")]) == 2
    assert "not a server path" in capsys.readouterr().err
    assert main(["serve", "--db", db, "--max-body-bytes", "0"]) == 2
    assert "--max-body-bytes" in capsys.readouterr().err

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "x", "variants": {"holdout": 1.0}}]))
    assert main(["serve", "--db", db, "--experiments", str(bad)]) == 2
    assert "reserved" in capsys.readouterr().err
    bad.write_text(json.dumps([{"name": "x", "split": {}}]))
    assert main(["serve", "--db", db, "--experiments", str(bad)]) == 2
    assert "unknown keys" in capsys.readouterr().err
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["serve", "--db", empty]) == 2
    assert "no published run" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # serve extra absent
    assert main(["serve", "--db", db]) == 2
    assert "pip install 'stylerec[serve]'" in capsys.readouterr().err


def test_image_uris_are_never_server_paths(client: TestClient,
                                           world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    items = []
    for uid in (*run.user_ids[:6], "newcomer"):
        for path, body in (("/rank", {"user_id": uid, "candidates": run.item_ids}),
                           ("/recommend", {"user_id": uid, "k": 50})):
            items += client.post(path, json=body).json()["items"]
    uris = [i["image_uri"] for i in items if i["image_uri"]]
    assert sum(bool(i["style_ids"]) for i in items) > 20  # renders among them
    assert not any(u.startswith("/") or run.render_root in u for u in uris), uris[:3]
    for i in items:  # renders: <key[:2]>/<key>.webp under the render root
        if i["style_ids"]:
            assert i["image_uri"].endswith(".webp") and i["image_uri"].count("/") == 1
        elif i["image_uri"]:
            assert i["image_uri"] == f"h/img/{i['item_id']}.jpg"


def test_body_limit_is_413(svc: PersonalizationService,
                           world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    with TestClient(create_app(svc, max_body_bytes=2000)) as c:
        small = {"user_id": run.user_ids[0], "candidates": run.item_ids[:20]}
        assert c.post("/rank", json=small).status_code == 200
        big = {"user_id": run.user_ids[0], "candidates": run.item_ids * 2}
        r = c.post("/rank", json=big)
        assert r.status_code == 413 and "exceeds 2000 bytes" in r.text
        # Without a Content-Length (chunked upload), the limit holds while reading.
        chunks = (b'{"user_id": "u", "candidates": [' + b'"i000001",' * 50 for _ in range(10))
        r = c.post("/rank", content=chunks, headers={"content-type": "application/json"})
        assert r.status_code == 413
    # The default is 1 MiB: a 2 MB body is refused before it is parsed.
    with TestClient(create_app(svc)) as c:
        r = c.post("/rank", content=b'{"user_id": "' + b"u" * 2_000_000 + b'"}',
                   headers={"content-type": "application/json"})
        assert r.status_code == 413 and len(r.content) < 500
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app(svc, max_body_bytes=0)


def test_422_names_the_field_without_echoing_the_input(svc: PersonalizationService) -> None:
    with TestClient(create_app(svc, max_body_bytes=64 << 20)) as c:
        huge = "x" * (10 << 20)
        for body, field in (({"user_id": "u", "candidates": ["i1"], "k": huge}, "k"),
                            ({"user_id": [huge], "candidates": ["i1"]}, "user_id"),
                            ({"user_id": "u", "candidates": ["i1"], huge[:1000]: 1},
                             huge[:1000]),
                            ({"user_id": "u", "candidates": [1.5] * 200_000}, "candidates")):
            r = c.post("/rank", json=body)
            assert r.status_code == 422
            assert len(r.content) < 8_000, (field[:10], len(r.content))
            assert "x" * 41 not in r.text
            assert all(set(d) == {"loc", "msg", "type"} for d in r.json()["detail"])
