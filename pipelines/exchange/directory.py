"""The national exchange's member directory: every node (its division code, endpoint, public keys
and the evidence it offers) and the exchange's own time-stamping keys. Nodes and the exchange
read the same published directory; a revoked key stays listed as revoked, so a message signed with
it is refused by name rather than as unknown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from pipelines.exchange.errors import ExchangeRefused

EXCHANGE = "EXCHANGE"  # the exchange's own member code (its keys countersign)


def division_prefix(code: str) -> str:
    """The division prefix a node's code covers: 500000 -> '50', 440300 -> '4403'."""
    p = code
    while len(p) > 2 and p.endswith("00"):
        p = p[:-2]
    return p


@dataclass(frozen=True)
class MemberKey:
    key_id: str
    suite: str
    public: str
    revoked: bool = False


@dataclass(frozen=True)
class Member:
    code: str  # GB/T 2260 division code of the node, or EXCHANGE
    name: str
    endpoint: str
    keys: tuple[MemberKey, ...]
    services: tuple[str, ...] = ()


@dataclass
class Directory:
    members: dict[str, Member] = field(default_factory=dict)

    def add(self, member: Member) -> None:
        self.members[member.code] = member

    def member(self, code: str) -> Member:
        found = self.members.get(code)
        if found is None:
            raise ExchangeRefused("unknown_node", f"{code!r} is not a member of the exchange: "
                                  "a node joins by having its keys listed in the directory")
        return found

    def key(self, code: str, key_id: str) -> MemberKey:
        for k in self.member(code).keys:
            if k.key_id == key_id:
                if k.revoked:
                    raise ExchangeRefused("revoked_key", f"key {key_id} of {code} is revoked: "
                                          "sign with the node's current key")
                return k
        raise ExchangeRefused("unknown_key", f"{code} has no key {key_id} in the directory: "
                              "publish it (or sign with a listed key)")

    def dumps(self) -> bytes:
        return orjson.dumps({"members": [
            {"code": m.code, "name": m.name, "endpoint": m.endpoint, "services": list(m.services),
             "keys": [k.__dict__ for k in m.keys]} for m in self.members.values()]},
            option=orjson.OPT_INDENT_2)

    @classmethod
    def loads(cls, data: bytes) -> Directory:
        d = cls()
        for m in orjson.loads(data)["members"]:
            d.add(Member(m["code"], m["name"], m["endpoint"],
                         tuple(MemberKey(**k) for k in m["keys"]), tuple(m["services"])))
        return d

    @classmethod
    def read(cls, path: Path) -> Directory:
        return cls.loads(path.read_bytes())
