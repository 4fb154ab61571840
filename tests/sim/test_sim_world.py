"""The synthetic world and the day engine, in process (no server)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipelines.catalog.identifiers import is_valid_citizen_id
from pipelines.sim.config import SimConfig, day_str
from pipelines.sim.simulator import Simulator
from pipelines.sim.world import build_world

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def world():
    return build_world(SimConfig(seed=3, scale=5000))


def test_persons_are_plausible(world):
    c, n = world.cols, world.n
    assert n == 5000
    ids = np.char.decode(c["id18"][:n]).tolist()
    assert len(set(ids)) == n and all(is_valid_citizen_id(i) for i in ids)
    node = world.in_node_mask("500000")[c["county"][:n]]
    assert 0.40 < node.mean() < 0.50
    # hukou codes are today's; IDs of older persons carry the old codes
    hukou = {world.county_code(k) for k in c["county"][:n].tolist()}
    assert not hukou & {"500381", "500222", "500227", "110228"}
    prefixes = {i[:6] for i in ids}
    assert {"500381", "500222", "500227", "110228"} & prefixes
    for i, pid in enumerate(ids):
        if pid[:6] == "500381":
            assert int(pid[6:14]) < 20061001 or c["birth"][i] < 0
    # spouses are symmetric and married
    sp = c["spouse"][:n]
    has = np.nonzero(sp >= 0)[0]
    assert len(has) > n * 0.3
    assert (sp[sp[has]] == has).all()
    assert np.isin(c["marital"][has], (20, 21, 22, 23)).all()
    assert (c["sex"][has] != c["sex"][sp[has]]).all()
    # mostly Han, some minorities
    assert 0.85 < (c["eth"][:n] == 1).mean() < 0.99


def test_twins_share_parents_birth_and_address(world):
    c, n = world.cols, world.n
    tw = c["twin"][:n]
    groups = {}
    for pid in np.nonzero(tw >= 0)[0].tolist():
        groups.setdefault(int(tw[pid]), []).append(pid)
    assert groups
    for members in groups.values():
        assert len(members) == 2
        a, b = members
        for col in ("mother", "father", "birth"):
            assert c[col][a] == c[col][b]
        if c["marital"][a] == c["marital"][b] == 10 and a not in world.moved \
                and b not in world.moved:
            assert (c["county"][a], c["addr"][a]) == (c["county"][b], c["addr"][b])
        assert c["id18"][a] != c["id18"][b]


def test_rare_names(world):
    names = world.names(np.arange(world.n))
    outside_gbk = [x for x in names if not _gbk(x)]
    rare = [x for x in names if set(x) & set("喆堃犇淼镕昇䶮𠮷㛃𬱖")]
    assert rare
    world2 = build_world(SimConfig(seed=4, scale=30000))
    names2 = world2.names(np.arange(world2.n))
    assert outside_gbk or [x for x in names2 if not _gbk(x)]


def _gbk(s: str) -> bool:
    try:
        s.encode("gbk")
        return True
    except UnicodeEncodeError:
        return False


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_days_do_not_depend_on_batching(tmp_path):
    def run(name, steps):
        cfg = SimConfig(seed=5, scale=1500, activity=40, drop_root=tmp_path / name / "drops",
                        state_dir=tmp_path / name / "state")
        s = Simulator(cfg)
        for k in steps:
            s.advance(k)
        feeds = {r: list(f.log) for r, f in s.feeds.items()}
        return _digest(cfg.drop_root), feeds, s

    a, fa, sa = run("a", [4])
    b, fb, _ = run("b", [1, 1, 2])
    assert a == b and fa == fb
    assert sa.status()["date"] == "2026-10-05" and day_str(sa.cfg.start_ordinal) == "20261001"
