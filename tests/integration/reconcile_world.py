"""A tiny hand-built warehouse for reconciliation tests: current records written straight into
the history tables (the loader is tested elsewhere), then real reconcile runs on them."""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb

from pipelines.catalog.model import catalog
from pipelines.catalog.identifiers import make_citizen_id
from pipelines.identity.reconcile import reconcile
from pipelines.warehouse.writer import ensure_schema

CAT = catalog()
T0 = dt.datetime(2026, 10, 1, 9, 0)
_seq = itertools.count(1)


def pid(birth: dt.date, seq: int, area: str = "500103") -> str:
    return make_citizen_id(area, birth, seq)


class World:
    def __init__(self, path) -> None:
        self.con = duckdb.connect(str(path))
        ensure_schema(self.con, CAT)

    def put(self, resource: str, gxsj: dt.datetime = T0, **values) -> None:
        """Make `values` the current record of its key (an earlier version stops being current)."""
        r = CAT.resource(resource)
        cols = [f.code for f in r.stored_fields]
        unknown = set(values) - set(cols)
        assert not unknown, f"{resource} has no fields {unknown}"
        keys = " AND ".join(f'"{k}" = ?' for k in r.primary_key)
        self.con.execute(f"UPDATE hist.{r.key} SET _is_current = false WHERE {keys}",
                         [values[k] for k in r.primary_key])
        n = next(_seq)
        self.con.execute(
            f"INSERT INTO hist.{r.key} ({', '.join(cols)}, _op, _gxsj, _is_current, _batch_id, "
            f"_vid) VALUES ({', '.join('?' for _ in cols)}, 'U', ?, true, ?, ?)",
            [values.get(c) for c in cols] + [gxsj, f"B{n:04d}", n])

    def delete(self, resource: str, gxsj: dt.datetime = T0, **key) -> None:
        """A deletion as the loader stores it: a current 'D' version of the key."""
        self.put(resource, gxsj, **key)
        r = CAT.resource(resource)
        where = " AND ".join(f'"{k}" = ?' for k in r.primary_key)
        self.con.execute(f"UPDATE hist.{r.key} SET _op = 'D' WHERE _is_current AND {where}",
                         [key[k] for k in r.primary_key])

    def person(self, gmsfhm: str, name: str, sex: str, birth: dt.date, division="500103",
               status="0", marital="10", death=None, gxsj=T0) -> None:
        self.put("PS_POP_BASIC", gxsj, GMSFHM=gmsfhm, XM=name, XBDM=sex, MZDM="01", CSRQ=birth,
                 HJDZ_XZQHDM=division, HJDZ_XXDZ="重庆市渝中区解放碑街道1号", HYZKDM=marital,
                 RYZTDM=status, SWRQ=death)

    def marriage(self, ywbh: str, husband: tuple, wife: tuple, kind="1",
                 date=dt.date(2026, 9, 1), division="500103", gxsj=T0) -> None:
        """husband / wife: (document number, name[, document type])."""
        self.put("CA_MARRIAGE", gxsj, YWBH=ywbh, YWLXDM=kind, DJRQ=date, DJJG_XZQHDM=division,
                 NF_ZJLXDM=husband[2] if len(husband) > 2 else "1", NF_ZJHM=husband[0],
                 NF_XM=husband[1], NV_ZJLXDM=wife[2] if len(wife) > 2 else "1",
                 NV_ZJHM=wife[0], NV_XM=wife[1], ZSBH=f"J{ywbh}")

    def cremation(self, no: str, gmsfhm: str, name: str, sex: str, died: dt.date,
                  cremated: dt.date, gxsj=T0) -> None:
        self.put("CA_CREMATION", gxsj, HHZMBH=no, SZ_GMSFHM=gmsfhm, SZ_XM=name, SZ_XBDM=sex,
                 SWRQ=died, HHRQ=cremated, BYG_MC="重庆市殡仪馆", BYG_XZQHDM="500103")

    def reconcile(self, today=dt.date(2026, 10, 2)) -> dict:
        return reconcile(self.con, CAT, today)

    def links(self) -> dict[str, tuple[str, str]]:
        return {m: (e, how) for m, e, how in self.con.execute(
            "SELECT mention_id, entity_id, method FROM ident.person_links").fetchall()}

    def entity_of(self, mention_id: str) -> str:
        return self.links()[mention_id][0]

    def golden(self, entity_id: str, field: str) -> list[tuple]:
        """Current candidates of one field, golden first: (value, provider, resource, rank, rule)."""
        return self.con.execute("""SELECT value, provider, resource, rank, rule
            FROM gold.field_values WHERE entity_id = ? AND field = ? AND valid_to IS NULL
            ORDER BY rank""", [entity_id, field]).fetchall()

    def events(self) -> list[tuple]:
        return self.con.execute("""SELECT kind, entity_id, other_entity_id FROM
            ident.entity_events WHERE kind <> 'created' ORDER BY happened_at, kind""").fetchall()

    def conflicts(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT kind, entity_id FROM gold.conflicts "
                                     "WHERE status = 'open'").fetchall())
