"""The pre-review rules (catalogs/prereview/rules.yaml), each expression compiled once with
zen-engine's expression language; a rule that does not compile, or names a field no template
has, stops the load naming the rule."""

from __future__ import annotations

import functools
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml
import zen

from pipelines import paths
from pipelines.serving.templates import Template, templates

RULES = paths.CATALOGS / "prereview" / "rules.yaml"
SEVERITIES = ("block", "warn", "info")
ON_FAIL = ("correct", "officer")


class RuleError(ValueError):
    """A rule of catalogs/prereview/rules.yaml cannot be used; the message names it."""


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    on_fail: str
    check: str
    explain_zh: str
    explain_en: str
    field: str | None = None  # a claimed-value rule: the form field it compares
    role: str | None = None  # an eligibility rule: the role it judges
    uses: tuple[str, ...] = ()
    params: dict = dataclasses.field(default_factory=dict)
    compiled: object = None

    def holds(self, context: dict) -> bool:
        return bool(self.compiled.evaluate({**self.params, **context}))


@dataclass(frozen=True)
class RuleSet:
    claimed: tuple[Rule, ...]
    eligibility: dict[str, tuple[Rule, ...]]


def _rule(spec: dict, where: str) -> Rule:
    try:
        rule = Rule(id=spec["id"], severity=spec["severity"], on_fail=spec["on_fail"],
                    check=spec["check"], explain_zh=spec["explain_zh"],
                    explain_en=spec["explain_en"], field=spec.get("field"),
                    role=spec.get("role"), uses=tuple(spec.get("uses", ())),
                    params=dict(spec.get("params", {})))
    except KeyError as e:
        raise RuleError(f"{where}: missing {e.args[0]}") from None
    if rule.severity not in SEVERITIES or rule.on_fail not in ON_FAIL:
        raise RuleError(f"{where} {rule.id}: severity is one of {SEVERITIES}, on_fail one of "
                        f"{ON_FAIL}")
    try:
        compiled = zen.compile_expression(rule.check)
    except Exception as e:  # zen reports a parse error as a plain exception
        raise RuleError(f"{where} {rule.id}: its check does not compile: {e}") from None
    return Rule(**{**rule.__dict__, "compiled": compiled})


def load_rules(templates: dict[str, Template], path: Path = RULES) -> RuleSet:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    fields = {f.code for t in templates.values() for r in t.roles.values() for f in r.fields}
    claimed = tuple(_rule(s, f"{path.name} claimed") for s in data.get("claimed", []))
    for r in claimed:
        if r.field not in fields:
            raise RuleError(f"{path.name} claimed {r.id}: no template has a field {r.field!r}")
    eligibility = {}
    for code, specs in (data.get("eligibility") or {}).items():
        if code not in templates:
            raise RuleError(f"{path.name} eligibility: no template {code}")
        rules = tuple(_rule(s, f"{path.name} eligibility {code}") for s in specs)
        for r in rules:
            role = templates[code].roles.get(r.role or "")
            have = {f.code for f in role.fields} if role else set()
            if role is None or not set(r.uses) <= have:
                raise RuleError(f"{path.name} eligibility {code} {r.id}: role {r.role!r} "
                                f"with fields {list(r.uses)} is not in the template")
        eligibility[code] = rules
    ids = [r.id for r in claimed] + [r.id for rs in eligibility.values() for r in rs]
    if len(ids) != len(set(ids)):
        raise RuleError(f"{path.name}: rule ids must be unique")
    return RuleSet(claimed, eligibility)


@functools.cache
def rules() -> RuleSet:
    """The shipped rules over the shipped templates, loaded once per process."""
    return load_rules(templates())
