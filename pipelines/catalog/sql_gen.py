"""SQL fragments generated from the catalogue. Identifiers come only from catalogue field codes
(validated upper-case names), never from data; values are always bound parameters."""

from __future__ import annotations

import re

from pipelines.catalog.model import Field, Resource

_IDENT = re.compile(r"^[A-Z][A-Z0-9_]*$")


def ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"refusing to use {name!r} as an SQL identifier")
    return f'"{name}"'


def typed_expr(f: Field, src: str = "s") -> str:
    """Expression turning the landed string column into the declared type (NULL if unparseable)."""
    c = f"{src}.{ident(f.code)}"
    match f.type:
        case "string":
            return c
        case "date":
            return f"CAST(try_strptime({c}, '%Y%m%d') AS DATE)"
        case "datetime":
            return f"try_strptime({c}, '%Y-%m-%d %H:%M:%S')"
        case "yearmonth":
            return f"CASE WHEN regexp_full_match({c}, '[0-9]{{4}}(0[1-9]|1[0-2])') THEN {c} END"
        case "integer":
            return f"TRY_CAST({c} AS BIGINT)"
        case "decimal":
            return f"TRY_CAST({c} AS DECIMAL({f.precision},{f.scale}))"
    raise ValueError(f.type)


_TYPE_REASON = {
    "date": ("日期格式错误，应为YYYYMMDD", "not a date in YYYYMMDD"),
    "datetime": ("时间格式错误，应为YYYY-MM-DD HH:MM:SS", "not a time in YYYY-MM-DD HH:MM:SS"),
    "yearmonth": ("年月格式错误，应为YYYYMM", "not a year-month in YYYYMM"),
    "integer": ("不是整数", "not an integer"),
    "decimal": ("不是合法金额/小数", "not a decimal of the declared precision"),
}


def problem_exprs(resource: Resource, standard: tuple[Field, ...]) -> list[str]:
    """One struct expression per row-level rule of this stage: key present, CZLX known, values parse.

    Each yields NULL when the row passes, else {field, reason_code, reason}.
    """
    out = []
    for k in resource.primary_key:
        out.append(
            f"CASE WHEN s.{ident(k)} IS NULL THEN {{'field': '{k}', 'reason_code': 'missing_key', "
            f"'reason': '主键字段为空 / key field is empty'}} END")
    out.append(
        "CASE WHEN s.\"CZLX\" IS NULL OR s.\"CZLX\" NOT IN ('I', 'U', 'D') THEN {'field': 'CZLX', "
        "'reason_code': 'bad_operation', 'reason': '操作类型应为I/U/D / operation must be I, U or D: ' "
        "|| coalesce(s.\"CZLX\", 'NULL')} END")
    for f in list(resource.stored_fields) + [x for x in standard if x.code == "GXSJ"]:
        if f.type == "string":
            continue
        zh, en = _TYPE_REASON[f.type]
        cond = f"s.{ident(f.code)} IS NOT NULL AND {typed_expr(f)} IS NULL"
        if f.code == "GXSJ":
            cond = f"{typed_expr(f)} IS NULL"
        out.append(
            f"CASE WHEN {cond} THEN {{'field': '{f.code}', 'reason_code': 'unparseable_value', "
            f"'reason': '{zh} / {en}: ' || coalesce(s.{ident(f.code)}, 'NULL')}} END")
    return out


def raw_line_expr(columns: list[str], src: str = "s") -> str:
    """The row re-serialised as an RFC 4180 line from the stored columns (as received)."""
    parts = [f"CASE WHEN {src}.{ident(c)} IS NULL THEN '' ELSE '\"' || "
             f"replace({src}.{ident(c)}, '\"', '\"\"') || '\"' END" for c in columns]
    return "concat_ws(',', " + ", ".join(parts) + ")"


def key_cols(resource: Resource, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{ident(k)}" for k in resource.primary_key)


def record_key_expr(resource: Resource, prefix: str = "") -> str:
    """The record's key as one string ('|' between key fields): how objections name a record."""
    return "concat_ws('|', " + ", ".join(f"CAST({prefix}{ident(k)} AS VARCHAR)"
                                         for k in resource.primary_key) + ")"


def key_join(resource: Resource, a: str, b: str) -> str:
    return " AND ".join(f"{a}.{ident(k)} = {b}.{ident(k)}" for k in resource.primary_key)
