"""The synthetic world at day 0: persons, families, enterprises, social organisations, and the
history the national platform already holds (marriages since 2004, recent deaths, last year's hukou
moves, penalties, subsistence months).

Persons live in numpy columns (one row per person, `pid` = row index) so that a million of them
generate in seconds; strings (names, addresses) are rendered on demand from pool indices.
Everything is drawn from `numpy.random.default_rng([seed, stream])`, so a seed fixes the world.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from pipelines.catalog.identifiers import make_customs_code, make_uscc
from pipelines.sim.config import SimConfig, SimData, day_str, days_of, node_prefix, sim_data

YEAR = 365.2425
_ID_W = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype="S1")
DIGITAL_MARRIAGE_FROM = days_of(dt.date(2004, 1, 1))  # civil-affairs records digital since ~2004
ID_SYSTEM_FROM = days_of(dt.date(1985, 9, 1))          # first-generation ID cards

PERSON_COLS: dict[str, tuple[str, int]] = {
    "id18": ("S18", 0), "idcode": ("i2", 0), "surname": ("i2", 0), "g1": ("i2", 0),
    "g2": ("i2", -1), "sex": ("u1", 1), "birth": ("i4", 0), "eth": ("u1", 1), "county": ("i2", 0),
    "addr": ("i8", 0), "marital": ("u1", 10), "ps_marital": ("u1", 10), "spouse": ("i4", -1),
    "father": ("i4", -1), "mother": ("i4", -1), "twin": ("i4", -1), "death": ("i4", -1),
    "cancel": ("i4", -1), "gxsj": ("i8", 0), "registered": ("?", True),
}


def id_checks(first17: np.ndarray) -> np.ndarray:
    """MOD 11-2 check characters for an int64 array of 17-digit numbers."""
    s = np.zeros(first17.shape, dtype=np.int64)
    v = first17.copy()
    for w in _ID_W[::-1]:
        s += (v % 10) * w
        v //= 10
    return _ID_CHECK[s % 11]


def ymd(days: np.ndarray) -> np.ndarray:
    """Day numbers -> int YYYYMMDD."""
    d = days.astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y * 10000 + m * 100 + dd


def pick1(rng, weights) -> int:
    """One index drawn with the given relative weights (cheap for short scalar draws)."""
    total = 0.0
    cum = []
    for x in weights:
        total += x
        cum.append(total)
    return min(bisect.bisect_right(cum, rng.random() * total), len(cum) - 1)


def _pick(rng, n, weights) -> np.ndarray:
    """n indices drawn with the given relative weights."""
    cum = np.cumsum(np.asarray(weights, dtype=float))
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(cum) - 1)


@dataclass
class Enterprise:
    eid: int
    uscc: str
    hgbm: str
    name: str
    county: int
    zone: str
    etype: str
    office: str
    regime: str
    level: str
    rated: int          # day number
    registered: int
    valid_until: int    # -1 = long-term
    rep: int            # pid of the legal representative
    status: str = "1"
    gxsj: int = 0
    trade_scale: float = 1.0


@dataclass
class SocialOrg:
    oid: int
    uscc: str
    name: str
    otype: str
    county: int
    established: int
    rep: int
    status: str = "1"
    gxsj: int = 0


@dataclass
class Marriage:
    mid: int
    ywbh: str
    kind: str        # "1" marriage, "2" divorce
    day: int
    registry: int    # county index
    husband: int     # pid or -1 (foreign spouse)
    wife: int
    foreign: tuple[str, str, str] | None = None  # (doc type, doc no, name) of a non-world spouse
    foreign_is_husband: bool = False
    cert: str = ""
    gxsj: int = 0


@dataclass
class Penalty:
    pen_id: int
    decision: str
    eid: int
    category: str
    offence: str
    fine_cents: int | None
    day: int
    office: str
    publish_until: int | None
    gxsj: int = 0
    revoked: bool = False


@dataclass
class World:
    cfg: SimConfig
    data: SimData
    n: int = 0
    cols: dict[str, np.ndarray] = field(default_factory=dict)
    idcodes: list[str] = field(default_factory=list)
    moved: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    enterprises: list[Enterprise] = field(default_factory=list)
    orgs: list[SocialOrg] = field(default_factory=list)
    marriages: list[Marriage] = field(default_factory=list)
    penalties: list[Penalty] = field(default_factory=list)
    moves: list[dict] = field(default_factory=list)      # PS_HUKOU_MOVE history (records)
    sub: dict[str, np.ndarray] = field(default_factory=dict)  # subsistence recipients
    twin_groups: int = 0
    newborn_seqs: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    widow_pending: dict[int, int] = field(default_factory=dict)  # dead pid -> surviving spouse
    deaths: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid -> (cremation day, home)
    counters: dict[str, int] = field(default_factory=dict)

    # --- column access ---------------------------------------------------------------------------
    def __getattr__(self, name: str):
        cols = self.__dict__.get("cols")
        if cols is not None and name in cols:
            return cols[name][: self.__dict__["n"]]
        raise AttributeError(name)

    def col(self, name: str) -> np.ndarray:
        return self.cols[name]

    def grow(self, k: int) -> np.ndarray:
        """Append k blank persons; returns their pids."""
        cap = len(self.cols["birth"])
        if self.n + k > cap:
            new_cap = max(int(cap * 1.5), self.n + k + 1024)
            for name, (dtype, fill) in PERSON_COLS.items():
                arr = np.full(new_cap, fill, dtype=dtype)
                arr[:cap] = self.cols[name]
                self.cols[name] = arr
        pids = np.arange(self.n, self.n + k)
        for name, (_dtype, fill) in PERSON_COLS.items():
            self.cols[name][pids] = fill
        self.n += k
        return pids

    def next(self, counter: str) -> int:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        return self.counters[counter]

    # --- rendering -------------------------------------------------------------------------------
    def name(self, pid: int) -> str:
        c = self.cols
        d = self.data
        pool = d.given_m if c["sex"][pid] == 1 else d.given_f
        g2 = int(c["g2"][pid])
        return (d.surnames[c["surname"][pid]] + pool[c["g1"][pid]]
                + (pool[g2] if g2 >= 0 else ""))

    def names(self, pids: np.ndarray) -> list[str]:
        d = self.data
        c = self.cols
        sur = [d.surnames[i] for i in c["surname"][pids].tolist()]
        out = []
        for s, sex, g1, g2 in zip(sur, c["sex"][pids].tolist(), c["g1"][pids].tolist(),
                                  c["g2"][pids].tolist(), strict=True):
            pool = d.given_m if sex == 1 else d.given_f
            out.append(s + pool[g1] + (pool[g2] if g2 >= 0 else ""))
        return out

    def address(self, county: int, s: int) -> str:
        roads = self.data.places["roads"]
        comm = self.data.places["communities"]
        r = len(roads)
        return (f"{self.data.counties[county].address}{roads[s % r]}{s // 32 % 300 + 1}号"
                f"{roads[s // 9600 % r][:2]}{comm[s // 230400 % len(comm)]}"
                f"{s // 1843200 % 25 + 1}栋"
                f"{s // 46080000 % 4 + 1}单元{(s // 184320000 % 30 + 1) * 100 + s % 7 + 1}")

    def id_of(self, pid: int) -> str:
        return self.cols["id18"][pid].decode()

    def county_code(self, county: int) -> str:
        return self.data.counties[county].code

    def in_node_mask(self, node: str) -> np.ndarray:
        p = node_prefix(node)
        return np.array([c.code.startswith(p) for c in self.data.counties], dtype=bool)


# --- generation ----------------------------------------------------------------------------------

def build_world(cfg: SimConfig, data: SimData | None = None) -> World:
    data = data or sim_data()
    w = World(cfg=cfg, data=data)
    cap = int(cfg.scale * 1.05) + 1024
    w.cols = {k: np.full(cap, fill, dtype=dt_) for k, (dt_, fill) in PERSON_COLS.items()}
    _code_table(w)
    _persons(w, np.random.default_rng([cfg.seed, 1]))
    _enterprises(w, np.random.default_rng([cfg.seed, 2]))
    _social_orgs(w, np.random.default_rng([cfg.seed, 3]))
    _penalties(w, np.random.default_rng([cfg.seed, 4]))
    _subsistence(w, np.random.default_rng([cfg.seed, 5]))
    return w


def _code_table(w: World) -> None:
    codes = []
    for c in w.data.counties:
        codes.append(c.code)
        codes.extend(old for old, _ in c.history)
    w.idcodes = codes
    w.code_index = {c: i for i, c in enumerate(codes)}  # type: ignore[attr-defined]


def assign_ids(w: World, pids: np.ndarray, assign_county: np.ndarray, assign_day: np.ndarray,
               rng: np.random.Generator) -> None:
    """Citizen IDs: address code of the county as it was on `assign_day`, birth date, sequence of
    the right parity for sex, MOD 11-2 check. Sequences are redrawn until (code, birth, seq) is
    unique among `pids` (callers handle uniqueness against other persons)."""
    cnt = w.data.counties
    code_idx = np.empty(len(pids), dtype=np.int16)
    for ci, c in enumerate(cnt):
        m = assign_county == ci
        if not m.any():
            continue
        code = np.full(m.sum(), w.code_index[c.code], dtype=np.int16)  # type: ignore[attr-defined]
        for old, until in sorted(c.history, key=lambda h: -h[1]):
            code[assign_day[m] < until] = w.code_index[old]  # type: ignore[attr-defined]
        code_idx[m] = code
    sex = w.cols["sex"][pids].astype(np.int64)
    birth = w.cols["birth"][pids].astype(np.int64)
    seq = rng.integers(0, 500, len(pids)) * 2 + (sex == 1)
    key_base = code_idx.astype(np.int64) * (1 << 40) + (birth + 100_000) * 1024
    for _ in range(50):
        key = key_base + seq
        _, first, counts = np.unique(key, return_index=True, return_counts=True)
        dup = np.ones(len(key), dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        seq[dup] = rng.integers(0, 500, dup.sum()) * 2 + (sex[dup] == 1)
    codes_int = np.array([int(c) for c in w.idcodes], dtype=np.int64)[code_idx]
    first17 = codes_int * 10**11 + ymd(birth) * 1000 + seq
    checks = id_checks(first17)
    w.cols["id18"][pids] = np.char.add(first17.astype("S17"), checks)
    w.cols["idcode"][pids] = code_idx


def given_names(w: World, rng, sex: np.ndarray):
    """First and second given-name indexes for people of each sex; -1 for no second (28%)."""
    n = len(sex)
    d = w.data
    g1 = np.where(sex == 1, _pick(rng, n, d.given_m_w), _pick(rng, n, d.given_f_w))
    g2 = np.where(sex == 1, _pick(rng, n, d.given_m_w), _pick(rng, n, d.given_f_w))
    g2 = np.where(rng.random(n) < 0.72, g2, -1)
    return g1.astype(np.int16), g2.astype(np.int16)


def _counties_in_group(w: World, rng, groups: np.ndarray) -> np.ndarray:
    out = np.zeros(len(groups), dtype=np.int16)
    for g in w.data.groups:
        m = groups == g.idx
        ws = [w.data.counties[i].weight for i in g.counties]
        out[m] = np.array(g.counties)[_pick(rng, int(m.sum()), ws)]
    return out


def _ethnicity(w: World, rng, groups: np.ndarray) -> np.ndarray:
    out = np.ones(len(groups), dtype=np.uint8)
    for g in w.data.groups:
        m = groups == g.idx
        codes = np.array([int(k) for k in g.ethnicity], dtype=np.uint8)
        out[m] = codes[_pick(rng, int(m.sum()), list(g.ethnicity.values()))]
    return out


def _pair(w: World, rng, men: np.ndarray, women: np.ndarray, start: int) -> tuple[np.ndarray, ...]:
    """Pair men and women of similar age (men ~2 years older) within each group; 4% of people
    marry across groups. Returns (husbands, wives)."""
    c = w.cols
    gcount = len(w.data.groups)
    grp = np.array([cc.group for cc in w.data.counties], dtype=np.int64)

    def bucket(p):
        g = grp[c["county"][p]]
        cross = rng.random(len(p)) < 0.04
        g[cross] = rng.integers(0, gcount, cross.sum())
        return g

    bm, bw = bucket(men), bucket(women)
    hs, ws = [], []
    for g in range(gcount):
        m = men[bm == g]
        f = women[bw == g]
        k = min(len(m), len(f))
        if k == 0:
            continue
        m = rng.permutation(m)[:k]
        f = rng.permutation(f)[:k]
        km = c["birth"][m] + rng.normal(0, 700, k)
        kf = c["birth"][f] - 730 + rng.normal(0, 700, k)
        hs.append(m[np.argsort(km)])
        ws.append(f[np.argsort(kf)])
    if not hs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(hs), np.concatenate(ws)


def _persons(w: World, rng: np.random.Generator) -> None:
    """The population on the start day, one step after another. The steps draw from one
    generator in this order, so the order is part of the seed's meaning: a step moved or a draw
    added changes every world after it."""
    n0 = int(round(w.cfg.scale * 0.62))
    base = _base_generation(w, rng, n0)
    hus, wif, mdates = _base_couples(w, rng, base)
    kids, twin2, birth_county = _children(w, rng, hus, wif, mdates, w.cfg.scale - n0)
    _adult_children_move(w, rng, kids)
    h2, w2, md2 = _second_generation_couples(w, rng, kids)
    _assign_person_ids(w, rng, base, kids, birth_county)
    _addresses(w, rng, hus, wif, h2, w2, kids)
    _unmarried_twins_live_together(w, kids, twin2, h2, w2)
    _marriages_and_divorces(w, rng, np.concatenate([hus, h2]), np.concatenate([wif, w2]),
                            np.concatenate([mdates, md2]))
    _deaths(w, rng)
    _last_years_moves(w, rng)
    _last_ps_update(w, rng)


def _base_generation(w: World, rng, n0: int) -> np.ndarray:
    """n0 persons born 1935..1998 in counties weighted by group; returns their pids."""
    d, c = w.data, w.cols
    base = w.grow(n0)
    groups = _pick(rng, n0, [g.weight for g in d.groups])
    c["county"][base] = _counties_in_group(w, rng, groups)
    lo, hi = days_of(dt.date(1935, 1, 1)), days_of(dt.date(1998, 12, 31))
    c["birth"][base] = lo + (rng.beta(1.6, 1.3, n0) * (hi - lo)).astype(np.int64)
    c["sex"][base] = rng.integers(1, 3, n0)
    c["eth"][base] = _ethnicity(w, rng, groups)
    c["surname"][base] = _pick(rng, n0, d.surname_w)
    c["g1"][base], c["g2"][base] = given_names(w, rng, c["sex"][base])
    return base


def _base_couples(w: World, rng, base: np.ndarray) -> tuple[np.ndarray, ...]:
    """Couples among the base generation (about 88% ever marry); most wives moved hukou to the
    husband's county. Returns (husbands, wives, marriage days)."""
    c, start = w.cols, w.cfg.start_ordinal
    marry = rng.random(len(base)) < 0.88
    men = base[marry & (c["sex"][base] == 1)]
    women = base[marry & (c["sex"][base] == 2)]
    hus, wif = _pair(w, rng, men, women, start)
    mdates = _marriage_dates(w, rng, hus, wif, start)
    follow = rng.random(len(wif)) < 0.8
    c["county"][wif[follow]] = c["county"][hus[follow]]
    return hus, wif, mdates


def _children(w: World, rng, hus, wif, mdates, nc: int) -> tuple[np.ndarray, ...]:
    """nc children of base couples (fertility by the mother's birth cohort; about 1% are the
    second of twins), in their mother's county. Returns (pids, index of each second twin among
    them, county of birth)."""
    c, start = w.cols, w.cfg.start_ordinal
    fert = np.where(c["birth"][wif] < days_of(dt.date(1960, 1, 1)), 2.4,
                    np.where(c["birth"][wif] < days_of(dt.date(1976, 1, 1)), 1.5, 1.1))
    lo_b = mdates + 300
    hi_b = np.minimum(c["birth"][wif] + int(44 * YEAR), start - 1)
    ok = hi_b > lo_b + 30
    cidx = np.nonzero(ok)[0]
    kids = w.grow(nc)
    pick = cidx[_pick(rng, nc, fert[ok])]
    births = lo_b[pick] + (rng.random(nc) ** 1.3 * (np.minimum(hi_b[pick] - lo_b[pick], 12 * YEAR)))
    births = births.astype(np.int64)
    # twins: about 1% of children are the second of a pair
    twin2 = np.nonzero(rng.random(nc - 1) < 0.01)[0] + 1
    twin2 = twin2[np.diff(np.concatenate([[-5], twin2])) > 1]
    pick[twin2] = pick[twin2 - 1]
    births[twin2] = births[twin2 - 1]
    tg = np.arange(len(twin2), dtype=np.int32)
    c["twin"][kids[twin2]] = tg
    c["twin"][kids[twin2 - 1]] = tg
    w.twin_groups = len(twin2)
    fa, mo = hus[pick], wif[pick]
    c["father"][kids], c["mother"][kids] = fa, mo
    c["birth"][kids] = births
    c["sex"][kids] = rng.integers(1, 3, nc)
    c["surname"][kids] = np.where(rng.random(nc) < 0.94, c["surname"][fa], c["surname"][mo])
    c["g1"][kids], c["g2"][kids] = given_names(w, rng, c["sex"][kids])
    c["eth"][kids] = np.where(rng.random(nc) < 0.5, c["eth"][fa], c["eth"][mo])
    c["county"][kids] = c["county"][mo]
    # twins share everything but sex/name/sequence: same county already (same mother)
    return kids, twin2, c["county"][kids].copy()


def _age_at_start(w: World, pids: np.ndarray) -> np.ndarray:
    return (w.cfg.start_ordinal - w.cols["birth"][pids]) / YEAR


def _adult_children_move(w: World, rng, kids: np.ndarray) -> None:
    """Adult children often live elsewhere: a quarter in their group, 6% of the rest further."""
    d, c = w.data, w.cols
    adult = _age_at_start(w, kids) >= 18
    move_local = adult & (rng.random(len(kids)) < 0.25)
    move_far = adult & ~move_local & (rng.random(len(kids)) < 0.06)
    kg = np.array([d.counties[i].group for i in c["county"][kids]])
    c["county"][kids[move_local]] = _counties_in_group(w, rng, kg[move_local])
    far_groups = _pick(rng, int(move_far.sum()), [g.weight for g in d.groups])
    c["county"][kids[move_far]] = _counties_in_group(w, rng, far_groups)


def _second_generation_couples(w: World, rng, kids: np.ndarray) -> tuple[np.ndarray, ...]:
    """Couples among adult children, never siblings; 70% of wives moved to the husband's county.
    Returns (husbands, wives, marriage days)."""
    c, start = w.cols, w.cfg.start_ordinal
    pm = np.clip((_age_at_start(w, kids) - 22) / 8, 0, 0.85)
    wants = rng.random(len(kids)) < pm
    men2 = kids[wants & (c["sex"][kids] == 1)]
    women2 = kids[wants & (c["sex"][kids] == 2)]
    h2, w2 = _pair(w, rng, men2, women2, start)
    sib = (c["father"][h2] == c["father"][w2])
    h2, w2 = h2[~sib], w2[~sib]
    md2 = _marriage_dates(w, rng, h2, w2, start)
    follow = rng.random(len(w2)) < 0.7
    c["county"][w2[follow]] = c["county"][h2[follow]]
    return h2, w2, md2


def _assign_person_ids(w: World, rng, base, kids, birth_county) -> None:
    """ID numbers from the address code of the county where (and when) each was assigned: the
    birth county for children, for 10% of the base generation another county of their group."""
    d, c = w.data, w.cols
    all_p = np.arange(w.n)
    assign_county = c["county"][all_p].copy()
    assign_county[kids] = birth_county
    far_origin = rng.random(len(base)) < 0.1
    bg = np.array([d.counties[i].group for i in assign_county[base]])
    assign_county[base[far_origin]] = _counties_in_group(w, rng, bg[far_origin])
    assign_day = np.maximum(c["birth"][all_p], ID_SYSTEM_FROM + rng.integers(0, 1500, w.n))
    assign_day = np.where(c["birth"][all_p] >= ID_SYSTEM_FROM, c["birth"][all_p], assign_day)
    assign_ids(w, all_p, assign_county, assign_day, rng)


def _addresses(w: World, rng, hus, wif, h2, w2, kids) -> None:
    """A random address each; a couple sharing a county shares it; minors live with their
    mother (her county and address)."""
    c = w.cols
    c["addr"][np.arange(w.n)] = rng.integers(0, 2**31 - 1, w.n)
    same = c["county"][wif] == c["county"][hus]
    c["addr"][wif[same]] = c["addr"][hus[same]]
    same2 = c["county"][w2] == c["county"][h2]
    c["addr"][w2[same2]] = c["addr"][h2[same2]]
    young = kids[_age_at_start(w, kids) < 18]
    c["addr"][young] = c["addr"][c["mother"][young]]
    c["county"][young] = c["county"][c["mother"][young]]


def _unmarried_twins_live_together(w: World, kids, twin2, h2, w2) -> None:
    """Same hukou county and address for twins neither of whom married."""
    c = w.cols
    t1, t2 = kids[twin2 - 1], kids[twin2]
    paired = np.zeros(w.n, dtype=bool)
    paired[h2] = paired[w2] = True
    home = ~paired[t1] & ~paired[t2]
    c["county"][t2[home]] = c["county"][t1[home]]
    c["addr"][t2[home]] = c["addr"][t1[home]]


def _marriages_and_divorces(w: World, rng, all_h, all_w, all_md) -> None:
    """Marital status and spouses (12% divorced before the start) and the marriage registry's
    records (which exist from 2004 on: split authority before that)."""
    c, start = w.cols, w.cfg.start_ordinal
    first = rng.random(len(all_h)) < 0.85
    div_p = rng.random(len(all_h)) < 0.12
    ddate = all_md + (365 + rng.random(len(all_h)) * 15 * YEAR).astype(np.int64)
    divorced = div_p & (ddate < start - 1)
    married_now = ~divorced
    c["spouse"][all_h[married_now]] = all_w[married_now]
    c["spouse"][all_w[married_now]] = all_h[married_now]
    code_m = np.where(first, 21, 22)
    code_m = np.where(rng.random(len(all_h)) < 0.5, 20, code_m)
    c["marital"][all_h] = np.where(married_now, code_m, 40)
    c["marital"][all_w] = np.where(married_now, code_m, 40)
    _marriage_records(w, rng, all_h, all_w, all_md, ddate, divorced)


def _deaths(w: World, rng) -> None:
    """Deaths in the last three years (mortality rises with age), their cancellation lag, the
    surviving spouse widowed, and the cremations."""
    c, start = w.cols, w.cfg.start_ordinal
    age_all = (start - c["birth"][: w.n]) / YEAR
    m = 0.0004 * np.exp(0.085 * (age_all - 30))
    dies = rng.random(w.n) < 1 - np.exp(-3 * np.minimum(m, 0.5))
    dead = np.nonzero(dies)[0]
    c["death"][dead] = start - 1 - rng.integers(0, 3 * 365, len(dead))
    lag = np.minimum(rng.exponential(8, len(dead)), 40).astype(np.int64)
    c["cancel"][dead] = c["death"][dead] + lag
    sp = c["spouse"][dead]
    has_sp = sp >= 0
    c["marital"][sp[has_sp]] = np.where(c["death"][sp[has_sp]] >= 0, c["marital"][sp[has_sp]], 30)
    c["ps_marital"][: w.n] = c["marital"][: w.n]
    # survivor's PS status follows only once the cancellation has been registered
    pending = has_sp & (c["cancel"][dead] >= start)
    sp_p = sp[pending]
    alive_sp = c["death"][sp_p] < 0
    c["ps_marital"][sp_p[alive_sp]] = c["marital"][dead[pending][alive_sp]]
    w.widow_pending = {int(a): int(b) for a, b in zip(dead[pending][alive_sp].tolist(),
                                                      sp_p[alive_sp].tolist(), strict=True)}
    _cremations(w, rng, dead)
    c["spouse"][sp[has_sp]] = -1
    c["spouse"][dead] = -1


def _last_years_moves(w: World, rng) -> None:
    """Hukou moves of 1.5% of living adults over the last year (delivered as the initial
    PS_HUKOU_MOVE incremental), in day order."""
    c, start = w.cols, w.cfg.start_ordinal
    alive = np.nonzero(c["death"][: w.n] < 0)[0]
    adults = alive[(start - c["birth"][alive]) > 18 * YEAR]
    movers = adults[rng.random(len(adults)) < 0.015]
    mdays = start - 1 - rng.integers(0, 365, len(movers))
    order = np.argsort(mdays, kind="stable")
    movers, mdays = movers[order], mdays[order]
    far = rng.random(len(movers)) < 0.4
    for pid, day, is_far in zip(movers.tolist(), mdays.tolist(), far.tolist(), strict=True):
        move_person(w, rng, pid, day, is_far, day * 86400 + int(rng.integers(32400, 64800)))


def _last_ps_update(w: World, rng) -> None:
    """Each record's last PS update time (GXSJ): a working hour since 2012, or the cancellation
    day for a death already registered; never earlier than a change made above."""
    c, start = w.cols, w.cfg.start_ordinal
    upd_lo = np.maximum(c["birth"][: w.n] + 20, days_of(dt.date(2012, 1, 1)))
    upd = upd_lo + (rng.random(w.n) * np.maximum(start - 1 - upd_lo, 1)).astype(np.int64)
    g = upd * 86400 + rng.integers(8 * 3600, 18 * 3600, w.n)
    canc = c["cancel"][: w.n]
    known_dead = (canc >= 0) & (canc < start)
    g[known_dead] = canc[known_dead] * 86400 + rng.integers(8 * 3600, 18 * 3600, known_dead.sum())
    c["gxsj"][: w.n] = np.maximum(g, c["gxsj"][: w.n])


def funeral_home(w: World, rng, county: int) -> int:
    """Index into the flat funeral-home list: usually in the person's own group."""
    homes = w.homes  # type: ignore[attr-defined]
    g = w.data.counties[county].group
    if rng.random() < 0.06:
        g = int(rng.integers(0, len(w.data.groups)))
    gcode = w.data.groups[g].code
    cands = [i for i, h in enumerate(homes) if h[0] == gcode]
    code = w.county_code(county)
    local = [i for i in cands if homes[i][2] == code]
    if local and rng.random() < 0.7:
        return local[0]
    return cands[int(rng.integers(0, len(cands)))]


def _cremations(w: World, rng, dead: np.ndarray) -> None:
    homes = []
    for gcode, lst in w.data.places["funeral_homes"].items():
        for h in lst:
            homes.append((str(gcode), h["name"], str(h["code"])))
    w.homes = homes  # type: ignore[attr-defined]
    c = w.cols
    for pid in dead.tolist():
        crem = int(c["death"][pid]) + int(rng.integers(0, 6))
        w.deaths[pid] = (crem, funeral_home(w, rng, int(c["county"][pid])))


def _marriage_dates(w: World, rng, hus, wif, start) -> np.ndarray:
    c = w.cols
    lo = np.maximum(c["birth"][hus] + int(22 * YEAR), c["birth"][wif] + int(20 * YEAR))
    md = lo + (rng.gamma(2.0, 1.6, len(hus)) * YEAR).astype(np.int64)
    late = md >= start - 1
    span = np.maximum(start - 1 - lo, 1)
    md[late] = lo[late] + (rng.random(late.sum()) * span[late]).astype(np.int64)
    return md


def _ywbh(county_code: str, day: int, seq: int) -> str:
    return f"{county_code}{day_str(day)}{seq:06d}"


def _marriage_records(w: World, rng, hus, wif, mdates, ddates, divorced) -> None:
    c = w.cols
    keep = mdates >= DIGITAL_MARRIAGE_FROM
    reg_h = rng.random(len(hus)) < 0.5
    events = []
    for i in np.nonzero(keep)[0].tolist():
        h, f = int(hus[i]), int(wif[i])
        reg = int(c["county"][h] if reg_h[i] else c["county"][f])
        events.append((int(mdates[i]), "1", reg, h, f))
        if divorced[i]:
            events.append((int(ddates[i]), "2", reg, h, f))
    events.sort(key=lambda e: (e[0], e[3]))
    for day, kind, reg, h, f in events:
        add_marriage(w, rng, day, kind, reg, h, f, day * 86400 + int(rng.integers(32400, 61200)))
    # a few registrations with a spouse holding a passport or HK/Macao/Taiwan permit
    n_foreign = max(3 * len(w.data.groups), int(len(events) * 0.01))
    alive_f = np.nonzero((c["sex"][: w.n] == 2) & (c["marital"][: w.n] == 10)
                         & ((w.cfg.start_ordinal - c["birth"][: w.n]) > 25 * YEAR))[0]
    if len(alive_f):
        for pid in rng.choice(alive_f, size=min(n_foreign, len(alive_f)), replace=False).tolist():
            day = w.cfg.start_ordinal - 1 - int(rng.integers(30, 3000))
            marry_foreign(w, rng, pid, day, day * 86400 + int(rng.integers(32400, 61200)))


def foreign_spouse(w: World, rng, sex: str) -> tuple[str, str, str]:
    kinds = [("2", "passport", 0.6), ("3", "hkmo", 0.25), ("4", "tw", 0.15)]
    k = kinds[pick1(rng, [x[2] for x in kinds])]
    pool = [p for p in w.data.foreign[k[1]] if p["sex"] == sex]
    person = pool[int(rng.integers(0, len(pool)))]
    if k[0] == "2":
        no = "E" + "".join(str(x) for x in rng.integers(0, 10, 8))
    elif k[0] == "3":
        no = ("H" if rng.random() < 0.8 else "M") + "".join(str(x) for x in rng.integers(0, 10, 8))
    else:
        no = "".join(str(x) for x in rng.integers(0, 10, 8))
    return k[0], no, person["name"]


def add_marriage(w: World, rng, day: int, kind: str, registry: int, h: int, f: int, gxsj: int,
                 foreign=None, foreign_is_husband: bool = False) -> Marriage:
    code = w.county_code(registry)
    seq = w.next(f"ywbh{code}{day_str(day)[:4]}")
    year = day_str(day)[:4]
    cert = f"{'J' if kind == '1' else 'L'}{code}-{year}-{seq:06d}"
    m = Marriage(len(w.marriages), _ywbh(code, day, w.next("ywbh")), kind, day, registry, h, f,
                 foreign, foreign_is_husband, cert, gxsj)
    w.marriages.append(m)
    return m


def marry_foreign(w: World, rng, pid: int, day: int, gxsj: int) -> Marriage:
    c = w.cols
    sex = int(c["sex"][pid])
    other = foreign_spouse(w, rng, "1" if sex == 2 else "2")
    c["marital"][pid] = 21
    c["ps_marital"][pid] = 21
    if sex == 2:
        return add_marriage(w, rng, day, "1", int(c["county"][pid]), -1, pid, gxsj, other, True)
    return add_marriage(w, rng, day, "1", int(c["county"][pid]), pid, -1, gxsj, other, False)


def move_person(w: World, rng, pid: int, day: int, far: bool, gxsj: int) -> list[dict]:
    """Move a person's hukou to another county (another group when `far`). Returns the two
    PS_HUKOU_MOVE records (迁出 at the old place, 迁入 at the new one) and records them."""
    c = w.cols
    d = w.data
    old = int(c["county"][pid])
    og = d.counties[old].group
    if far:
        others = [g for g in d.groups if g.idx != og]
        g = others[pick1(rng, [x.weight for x in others])]
    else:
        g = d.groups[og]
    choices = [i for i in g.counties if i != old]
    new = choices[pick1(rng, [d.counties[i].weight for i in choices])]
    w.moved.setdefault(pid, []).append((old, int(c["addr"][pid]), day))
    c["county"][pid] = new
    c["addr"][pid] = int(rng.integers(0, 2**31 - 1))
    c["gxsj"][pid] = gxsj
    name = w.name(pid)
    gid = w.id_of(pid)
    recs = []
    for kind, where in (("2", old), ("1", new)):
        code = w.county_code(where)
        rec = {"YWLSH": f"{code}{day_str(day)}{w.next('ywlsh'):08d}", "GMSFHM": gid, "XM": name,
               "QYLBDM": kind, "QCD_XZQHDM": w.county_code(old), "QRD_XZQHDM": w.county_code(new),
               "QYRQ": day_str(day), "_gxsj": gxsj, "_pid": pid}
        recs.append(rec)
    w.moves.extend(recs)
    return recs


# --- enterprises and organisations -------------------------------------------------------------

ENT_GROUP_WEIGHT = {"500000": 0.35, "510000": 0.2, "440300": 0.3, "110000": 0.15}
_BODY_CHARS = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))


def org_bodies(rng, n: int, used: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        k = n - len(out)
        digits = rng.integers(0, 10, (k, 8))
        letters = rng.integers(0, len(_BODY_CHARS), (k, 6))
        ma = rng.random(k) < 0.45
        for i in range(k):
            if ma[i]:
                b = "MA" + "".join(_BODY_CHARS[letters[i]])
            else:
                b = "".join(map(str, digits[i]))
            if b not in used:
                used.add(b)
                out.append(b)
    return out


def legal_representatives(w: World, rng, counties: np.ndarray) -> np.ndarray:
    """An alive adult with hukou in the same group as each county (legal representatives)."""
    c = w.cols
    start = w.cfg.start_ordinal
    grp = np.array([cc.group for cc in w.data.counties])
    cand = np.nonzero((c["death"][: w.n] < 0) & ((start - c["birth"][: w.n]) > 25 * YEAR))[0]
    cg = grp[c["county"][cand]]
    out = np.empty(len(counties), dtype=np.int64)
    for g in range(len(w.data.groups)):
        m = grp[counties] == g
        pool = cand[cg == g]
        if len(pool) == 0:
            pool = cand
        out[m] = rng.choice(pool, m.sum())
    return out


def enterprise_name(w: World, rng, county: int) -> str:
    """City + word + trade + suffix, e.g. 重庆长江进出口贸易有限公司."""
    p = w.data.places
    g = w.data.groups[w.data.counties[county].group]
    city = {"500000": "重庆", "510000": "成都" if w.county_code(county) != "510703" else "绵阳",
            "440300": "深圳", "440000": "深圳", "110000": "北京"}.get(g.code, g.name[:2])
    words, trades, sfx = p["enterprise_words"], p["enterprise_trades"], p["enterprise_suffixes"]
    word = words[int(rng.integers(0, len(words)))]
    trade = trades[int(rng.integers(0, len(trades)))]
    return f"{city}{word}{trade}{sfx[int(rng.integers(0, len(sfx)))]}"


REGIME_LEVELS = {"237": (["AA", "A", "B", "C"], [0.05, 0.1, 0.8, 0.05]),
                 "251": (["AA", "C", "GZ"], [0.05, 0.05, 0.9]),
                 "282": (["AA", "RZ", "CG", "C", "YZ"], [0.04, 0.06, 0.85, 0.04, 0.01])}
REGIME_FROM = {"237": days_of(dt.date(2018, 5, 1)), "251": days_of(dt.date(2021, 11, 1)),
               "282": days_of(dt.date(2026, 4, 1))}
REGIME_TO = {"237": days_of(dt.date(2021, 10, 31)), "251": days_of(dt.date(2026, 3, 31))}


def new_enterprise(w: World, rng, county: int, registered: int, gxsj: int, rep: int,
                   used: set[str]) -> Enterprise:
    d = w.data
    g = d.groups[d.counties[county].group]
    code = w.county_code(county)
    zones, zw = ["9", "2", "3", "4", "5"], [0.7, 0.12, 0.08, 0.05, 0.05]
    if g.sez:
        zones, zw = ["1", "9", "2", "4"], [0.45, 0.4, 0.1, 0.05]
    zone = zones[pick1(rng, zw)]
    types, tw = list("634128597"), [0.55, 0.12, 0.12, 0.06, 0.03, 0.06, 0.03, 0.02, 0.01]
    etype = types[pick1(rng, tw)]
    seq = w.next(f"hgbm{code[:4]}{zone}{etype}")
    hgbm = make_customs_code(code, zone, etype, seq)
    body = org_bodies(rng, 1, used)[0]
    uscc = make_uscc("9", "1", code, body)
    start = w.cfg.start_ordinal
    if registered >= REGIME_FROM["282"] or rng.random() < 0.7:
        regime = "282"
    else:
        regime = "251" if rng.random() < 0.67 else "237"
    levels, lw = REGIME_LEVELS[regime]
    level = levels[pick1(rng, lw)]
    lo = max(REGIME_FROM[regime], registered)
    hi = min(REGIME_TO.get(regime, start - 1), start - 1)
    rated = lo + int(rng.random() * max(hi - lo, 1)) if hi > lo else lo
    valid = -1 if rng.random() < 0.8 else start + int(rng.integers(30, 1500))
    return Enterprise(len(w.enterprises), uscc, hgbm, enterprise_name(w, rng, county), county, zone,
                      etype, g.customs_office, regime, level, rated, registered, valid, rep,
                      "1", gxsj, float(rng.lognormal(0, 1.2)))


def _enterprises(w: World, rng) -> None:
    d = w.data
    start = w.cfg.start_ordinal
    n = max(20, int(w.cfg.scale * 0.02))
    gw = [ENT_GROUP_WEIGHT.get(g.code, g.weight) for g in d.groups]
    groups = _pick(rng, n, gw)
    counties = _counties_in_group(w, rng, groups)
    reps = legal_representatives(w, rng, counties)
    w.used_bodies = set()  # type: ignore[attr-defined]
    lo = days_of(dt.date(2000, 1, 1))
    regs = np.sort(lo + (rng.random(n) ** 0.7 * (start - 1 - lo)).astype(np.int64))
    for i in range(n):
        reg = int(regs[i])
        gx_day = reg + int(rng.random() * (start - 1 - reg))
        gx = gx_day * 86400 + int(rng.integers(32400, 64800))
        e = new_enterprise(w, rng, int(counties[i]), reg, gx, int(reps[i]),
                           w.used_bodies)  # type: ignore[attr-defined]
        e.gxsj = max(e.gxsj, e.rated * 86400 + 36000)
        if rng.random() < 0.05:
            e.status = "2"
        w.enterprises.append(e)


def new_org(w: World, rng, county: int, established: int, gxsj: int, rep: int) -> SocialOrg:
    p = w.data.places
    cat = "123"[pick1(rng, [0.6, 0.35, 0.05])]
    body = org_bodies(rng, 1, w.used_bodies)[0]  # type: ignore[attr-defined]
    code = w.county_code(county)
    uscc = make_uscc("5", cat, code, body)
    cn = w.data.counties[county]
    prefix = w.data.groups[cn.group].name + (cn.name if rng.random() < 0.6 else "")
    words = p["org_words"]
    name = f"{prefix}{words[int(rng.integers(0, len(words)))]}" + \
        p["org_suffixes"][cat][int(rng.integers(0, len(p["org_suffixes"][cat])))]
    return SocialOrg(len(w.orgs), uscc, name, cat, county, established, rep, "1", gxsj)


def _social_orgs(w: World, rng) -> None:
    start = w.cfg.start_ordinal
    n = max(10, int(w.cfg.scale * 0.003))
    groups = _pick(rng, n, [g.weight for g in w.data.groups])
    counties = _counties_in_group(w, rng, groups)
    reps = legal_representatives(w, rng, counties)
    lo = days_of(dt.date(1995, 1, 1))
    for i in range(n):
        est = lo + int(rng.random() * (start - 1 - lo))
        upd = max(est, days_of(dt.date(2016, 1, 1))) + int(rng.integers(0, 300))
        upd = min(upd, start - 1)
        o = new_org(w, rng, int(counties[i]), est, upd * 86400 + int(rng.integers(32400, 64800)),
                    int(reps[i]))
        if rng.random() < 0.04:
            o.status = "2"
        w.orgs.append(o)


def new_penalty(w: World, rng, e: Enterprise, day: int, gxsj: int) -> Penalty:
    g = w.data.groups[w.data.counties[e.county].group]
    year = day_str(day)[:4]
    seq = w.next(f"pen{g.code}{year}")
    cat = "12345"[pick1(rng, [0.2, 0.6, 0.12, 0.06, 0.02])]
    fine = int(rng.lognormal(10, 1.3)) * 100 if cat in "23" else None
    offences = w.data.places["offences"]
    pub = day + (365 if cat in "12" else 3 * 365)
    return Penalty(len(w.penalties), f"{g.penalty_prefix}〔{year}〕{seq}号", e.eid, cat,
                   offences[int(rng.integers(0, len(offences)))], fine, day, e.office, pub, gxsj)


def _penalties(w: World, rng) -> None:
    start = w.cfg.start_ordinal
    events = []
    for e in w.enterprises:
        if rng.random() < 0.06:
            for _ in range(1 + int(rng.random() < 0.25)):
                lo = max(e.registered, start - 3 * 365)
                events.append((lo + int(rng.random() * (start - 1 - lo)), e.eid))
    events.sort()
    for day, eid in events:
        gx = day * 86400 + int(rng.integers(32400, 64800))
        p = new_penalty(w, rng, w.enterprises[eid], day, gx)
        w.penalties.append(p)


# --- subsistence ---------------------------------------------------------------------------------

SUB_BASE = {"500000": (800, 650, 1040), "510000": (780, 560, 1014), "440300": (1500, 1500, 1950),
            "110000": (1470, 1470, 1911)}
RURAL = {"500101", "500116", "500110", "500120", "500113", "110118"}


def month_index(day: int) -> int:
    s = day_str(day)
    return int(s[:4]) * 12 + int(s[4:6]) - 1


def month_label(mi: int) -> str:
    return f"{mi // 12}{mi % 12 + 1:02d}"


def _subsistence(w: World, rng) -> None:
    """Recipients: about 2.5% of persons (more among the elderly). Each has a start month, an end
    month (or none) and a monthly amount; dying recipients are stopped with a lag (sometimes a long
    one: benefits paid after death are a reconciliation target)."""
    c = w.cols
    start = w.cfg.start_ordinal
    n = w.n
    age = (start - c["birth"][:n]) / YEAR
    p = np.where(age >= 60, 0.045, np.where(age >= 18, 0.018, 0.02))
    rec = np.nonzero(rng.random(n) < p)[0]
    mi0 = month_index(start)
    sm = mi0 - rng.integers(0, 48, len(rec))
    # payments begin no earlier than the first month starting on or after the birth: a month's rows
    # are dated its 1st, and no record may name a person born after the record's date (GB 11643)
    first = [month_index(b) + (day_str(b)[6:] != "01") for b in c["birth"][rec].tolist()]
    sm = np.maximum(sm, np.asarray(first, dtype=np.int64))
    em = np.full(len(rec), -1, dtype=np.int64)
    ended = rng.random(len(rec)) < 0.15
    em[ended] = np.minimum(sm[ended] + rng.integers(1, 36, ended.sum()), mi0 - 1)
    em[ended & (em < sm)] = -1
    new_sub_arrays(w, rec, sm, em, rng)
    # deaths stop the payment: usually the month after the death, sometimes months later
    for i, pid in enumerate(w.sub["pid"].tolist()):
        dday = int(c["death"][pid])
        if dday >= 0:
            lag = int(rng.integers(4, 7)) if rng.random() < 0.1 else int(rng.integers(0, 2))
            stop = month_index(dday) + lag
            if w.sub["end"][i] < 0 or w.sub["end"][i] > stop:
                w.sub["end"][i] = stop
            w.sub["late_stop"][i] = lag >= 2


def new_sub_arrays(w: World, pids, start_m, end_m, rng) -> None:
    c = w.cols
    grp = [w.data.counties[k].group for k in c["county"][pids].tolist()]
    age = (w.cfg.start_ordinal - c["birth"][pids]) / YEAR
    typ = np.where((age >= 60) & (rng.random(len(pids)) < 0.25), 3, 1)
    rural = np.array([w.county_code(k) in RURAL for k in c["county"][pids].tolist()], dtype=bool)
    typ = np.where((typ == 1) & rural & (rng.random(len(pids)) < 0.6), 2, typ)
    base = np.array([SUB_BASE.get(w.data.groups[g].code, (800, 650, 1040))[t - 1]
                     for g, t in zip(grp, typ.tolist(), strict=True)], dtype=np.int64)
    frac = np.where(typ == 3, 1.0, 0.3 + 0.7 * rng.random(len(pids)))
    cents = (np.round(base * frac * 2) * 50).astype(np.int64)  # steps of 0.50 yuan
    new = {"pid": np.asarray(pids, dtype=np.int64), "type": typ.astype(np.int64),
           "cents": cents, "start": np.asarray(start_m, dtype=np.int64),
           "end": np.asarray(end_m, dtype=np.int64), "late_stop": np.zeros(len(pids), dtype=bool)}
    if not w.sub:
        w.sub = new
    else:
        w.sub = {k: np.concatenate([w.sub[k], new[k]]) for k in w.sub}
