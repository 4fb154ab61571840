"""Simulator settings, the simulated clock, and the static data under catalogs/sim/.

Everything the simulator does is a pure function of `SimConfig` (seed, scale, start date ...) and
the sequence of admin calls; no wall-clock time or unordered iteration leaks into what it delivers.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines import paths

SIM_DATA_DIR = paths.CATALOGS / "sim"
EPOCH = dt.date(1970, 1, 1)
BEIJING = dt.timezone(dt.timedelta(hours=8))
DEFAULT_SECRET = "dev-secret-change-me"
SECRET_ENV = "HUILIU_SIM_CLIENT_SECRET"

# Defect rates: row-level defects are per delivered row, batch-level (`*_batch`) per batch.
DEFAULT_DEFECTS: dict[str, float] = {
    "id_bad_checksum": 0.002,
    "id_15_digit": 0.002,
    "id_lowercase_x": 0.3,      # share of IDs ending in X delivered with a lowercase x
    "id_fullwidth": 0.001,
    "id_space": 0.001,
    "code_variant": 0.003,      # XBDM M/F, MZDM 57/58, HYZKDM one digit
    "duplicate_row": 0.002,
    "resend_row": 0.002,
    "modify_before_add": 0.01,  # share of new keys whose U arrives one batch before the I
    "stale_status": 0.05,       # delivered deaths shown alive again in a later full snapshot
    "bad_value": 0.001,         # unparseable date / amount
    "wrong_columns": 0.0005,
    "missing_key": 0.0005,
    "bad_bytes": 0.0005,        # a line with bytes that do not decode
    "overshare_batch": 0.02,    # ZP (photo) column in a PS_POP_BASIC batch
    "undeclared_field": 0.002,  # LXDH in an API record / a drop column (per batch for drops)
    "schema_drift_batch": 0.01,
    "move_not_cancelled": 0.0,  # movers between nodes still registered at the origin (全国通办)
}
NO_DEFECTS = {k: 0.0 for k in DEFAULT_DEFECTS}

# Fault rates are probabilities per request (API) or per batch (bulk); all off by default.
DEFAULT_FAULTS: dict[str, float] = {
    "http_5xx": 0.0,
    "http_429": 0.0,
    "slow": 0.0,
    "drop_connection": 0.0,
    "expire_token": 0.0,
    "truncated_part": 0.0,
    "corrupt_part": 0.0,
    "row_count_mismatch": 0.0,
    "in_progress": 0.0,
    "missing_part": 0.0,
    "slow_seconds": 2.0,   # parameter, not a rate
    "retry_after": 1.0,    # parameter, not a rate
}
FAULT_PARAMS = ("slow_seconds", "retry_after")


@dataclass
class SimConfig:
    seed: int = 42
    scale: int = 20_000
    node: str = "500000"
    start_date: dt.date = dt.date(2026, 10, 1)
    drop_root: Path = Path("./data/drops")
    state_dir: Path = Path("./data/sim")
    part_rows: int = 200_000
    token_ttl: int = 300
    rate_limit: float = 200.0
    activity: float = 1.0  # multiplies every daily event rate (tests use > 1 at small scale)
    # data objections: the provider corrects / confirms (else leaves "verifying"); delay in days
    objection_correct_rate: float = 0.7
    objection_confirm_rate: float = 0.1
    objection_delay_days_max: int = 2
    defects: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DEFECTS))
    faults: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAULTS))
    client_secret: str = field(default_factory=lambda: os.environ.get(SECRET_ENV, DEFAULT_SECRET))

    @classmethod
    def with_profile(cls, profile: str, **kw) -> SimConfig:
        if profile not in ("default", "none"):
            raise ValueError(f"unknown defect profile {profile!r}; use 'default' or 'none'")
        cfg = cls(**kw)
        cfg.defects = dict(DEFAULT_DEFECTS if profile == "default" else NO_DEFECTS)
        return cfg

    def __post_init__(self) -> None:
        check_objection_settings(self.objection_correct_rate, self.objection_confirm_rate,
                                 self.objection_delay_days_max)

    @property
    def start_ordinal(self) -> int:
        """Day 0 as days since 1970-01-01."""
        return (self.start_date - EPOCH).days


def check_objection_settings(correct: float, confirm: float, delay_max: int) -> None:
    """Raise ValueError unless both rates lie in 0..1, sum to at most 1, and delay_max >= 1."""
    for name, v in (("objection_correct_rate", correct), ("objection_confirm_rate", confirm)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name} must be within 0..1, got {v}")
    if float(correct) + float(confirm) > 1.0 + 1e-9:
        raise ValueError(f"objection_correct_rate + objection_confirm_rate must be at most 1, "
                         f"got {correct} + {confirm}")
    if int(delay_max) != delay_max or int(delay_max) < 1:
        raise ValueError(f"objection_delay_days_max must be an integer >= 1, got {delay_max}")


def update_rates(current: dict[str, float], changes: dict, what: str) -> dict[str, float]:
    """Validate and apply {name: rate}; raises ValueError naming the bad entry."""
    out = dict(current)
    for name, value in changes.items():
        if name not in current:
            raise ValueError(f"unknown {what} {name!r}; known: {sorted(current)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {name}: rate must be a number, got {value!r}") from None
        if name not in FAULT_PARAMS and not 0.0 <= v <= 1.0:
            raise ValueError(f"{what} {name}: rate must be within 0..1, got {v}")
        out[name] = v
    return out


# --- clock: days since 1970-01-01 and seconds since 1970-01-01 00:00 Beijing time ---------------

@functools.lru_cache(maxsize=None)
def day_str(day: int) -> str:
    """'YYYYMMDD' for a day number."""
    return (EPOCH + dt.timedelta(days=int(day))).strftime("%Y%m%d")


@functools.lru_cache(maxsize=None)
def _day_iso(day: int) -> str:
    return (EPOCH + dt.timedelta(days=int(day))).isoformat()


def ts_str(sec: int) -> str:
    """'YYYY-MM-DD HH:MM:SS' (Beijing time) for seconds since the epoch."""
    d, s = divmod(int(sec), 86400)
    return f"{_day_iso(d)} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def ts_strs(secs) -> list[str]:
    """Vectorised ts_str for a numpy array of seconds."""
    import numpy as np

    s = np.datetime_as_string(np.asarray(secs, dtype="int64").astype("datetime64[s]"), unit="s")
    return [x.replace("T", " ") for x in s.tolist()]


def ts_iso(sec: int) -> str:
    """ISO 8601 with the +08:00 offset."""
    return ts_str(sec).replace(" ", "T") + "+08:00"


def day_date(day: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(day))


def ym_str(day: int) -> str:
    return day_str(day)[:6]


def month_start(day: int) -> int:
    d = day_date(day)
    return (d.replace(day=1) - EPOCH).days


def prev_month_start(day: int) -> int:
    d = day_date(month_start(day) - 1)
    return (d.replace(day=1) - EPOCH).days


def days_of(date: dt.date) -> int:
    return (date - EPOCH).days


# --- static data ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class County:
    idx: int
    code: str
    name: str
    group: int
    address: str  # full address prefix: 四川省成都市锦江区
    weight: float
    history: tuple[tuple[str, int], ...]  # (old code, valid until day number)

    def code_at(self, day: int) -> str:
        for old, until in self.history:
            if day < until:
                return old
        return self.code


@dataclass(frozen=True)
class Group:
    idx: int
    code: str
    name: str
    weight: float
    customs_office: str
    penalty_prefix: str
    ethnicity: dict[str, float]
    counties: tuple[int, ...]
    sez: bool


@dataclass(frozen=True)
class SimData:
    groups: tuple[Group, ...]
    counties: tuple[County, ...]
    surnames: tuple[str, ...]
    surname_w: tuple[float, ...]
    given_m: tuple[str, ...]
    given_m_w: tuple[float, ...]
    given_f: tuple[str, ...]
    given_f_w: tuple[float, ...]
    foreign: dict
    places: dict

    def county_by_code(self, code: str) -> County:
        for c in self.counties:
            if c.code == code:
                return c
        raise KeyError(code)


def _pool(d: dict, rare: dict) -> tuple[tuple[str, ...], tuple[float, ...]]:
    merged = {**d, **rare}
    return tuple(merged), tuple(float(v) for v in merged.values())


@functools.cache
def sim_data(root: Path = SIM_DATA_DIR) -> SimData:
    regions = yaml.safe_load((root / "regions.yaml").read_text(encoding="utf-8"))
    names = yaml.safe_load((root / "names.yaml").read_text(encoding="utf-8"))
    places = yaml.safe_load((root / "places.yaml").read_text(encoding="utf-8"))
    groups, counties = [], []
    for gi, g in enumerate(regions["groups"]):
        idxs = []
        for c in g["counties"]:
            hist = tuple((h["code"], days_of(dt.date.fromisoformat(h["until"])))
                         for h in c.get("history", ()))
            city = c.get("city", "")
            counties.append(County(len(counties), c["code"], c["name"], gi,
                                   f"{g['address_prefix']}{city}{c['name']}", float(c["weight"]),
                                   hist))
            idxs.append(len(counties) - 1)
        groups.append(Group(gi, g["code"], g["name"], float(g["weight"]), g["customs_office"],
                            g["penalty_prefix"],
                            {str(k): float(v) for k, v in g["ethnicity"].items()},
                            tuple(idxs), bool(g.get("special_economic_zone", False))))
    gm, gmw = _pool(names["given_male"], names["rare"])
    gf, gfw = _pool(names["given_female"], names["rare"])
    return SimData(tuple(groups), tuple(counties), tuple(names["surnames"]),
                   tuple(float(v) for v in names["surnames"].values()), gm, gmw, gf, gfw,
                   names["foreign_spouses"], places)


def node_prefix(code: str) -> str:
    """Division prefix a node covers: 500000 -> '50', 440300 -> '4403', 500103 -> '500103'."""
    p = code
    while len(p) > 2 and p.endswith("00"):
        p = p[:-2]
    return p
