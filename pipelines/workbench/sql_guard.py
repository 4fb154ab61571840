"""The workbench's statement guard: one read-only statement over the analyst's tier, or Refused.

The tier file already holds only what the analyst may see, so the guard's job is to keep a statement
inside that file: no writes or settings, no other databases, no files, URLs or system catalogues,
and no functions that reach outside (environment, settings, file readers, nested SQL). sqlglot
parses the statement for the checks; DuckDB's own parser then confirms the statement count and type,
because DuckDB, not sqlglot, runs the text, and the two must not disagree about where it ends.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.scope import traverse_scope

_DIALECT = "duckdb"
_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "main", "temp", "system"})
_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})  # generate rows, read nothing
_SAFE_TABLE_FUNC_NODES = (exp.GenerateSeries, exp.ExplodingGenerateSeries, exp.Unnest, exp.Explode)
_DENIED_FUNCTIONS = frozenset({
    "getenv", "current_setting", "json_execute_serialized_sql", "json_serialize_sql",
    "json_deserialize_sql", "query", "query_table", "glob", "load_extension", "sql_auto_complete",
    "which_secret", "enable_profiling", "disable_profiling", "checkpoint", "force_checkpoint",
    "system", "sniff_csv", "enable_logging", "disable_logging", "arrow_scan",
})
_DENIED_PREFIXES = (
    "read_", "duckdb_", "pragma_", "parquet_", "sqlite_", "postgres_", "mysql_", "iceberg_",
    "delta_", "ducklake_", "st_read", "http_",
)
_QUERY_NODES = (exp.Select, exp.SetOperation, exp.Values, exp.Pivot, exp.Subquery)
_FILE_CHARS = frozenset("/\\.:*?")
# DuckDB statements that do something other than read; named first, they are refused before
# parsing because sqlglot parses some of them oddly (EXPORT fails, CHECKPOINT becomes a column)
_WRITE_WORDS = frozenset({
    "ABORT", "ALTER", "ANALYZE", "ATTACH", "BEGIN", "CALL", "CHECKPOINT", "COMMENT", "COMMIT",
    "COPY", "CREATE", "DEALLOCATE", "DELETE", "DETACH", "DROP", "END", "EXECUTE", "EXPORT", "FORCE",
    "IMPORT", "INSERT", "INSTALL", "LOAD", "MERGE", "PRAGMA", "PREPARE", "RESET", "ROLLBACK", "SET",
    "SHOW", "START", "TRUNCATE", "UNINSTALL", "UPDATE", "USE", "VACUUM",
})


class Refused(Exception):
    """A statement the workbench will not run. Fields: code (short machine word, e.g.
    'not_read_only', 'multiple_statements', 'unknown_table', 'table_function',
    'forbidden_function', 'file_path', 'other_database', 'system_catalog', 'syntax'), message (one
    sentence for the analyst that says what is wrong and what to do instead), line and column
    (1-based position of the problem in the SQL text, or None when not known)."""

    def __init__(self, code: str, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.code, self.message, self.line, self.column = code, message, line, column


@dataclass(frozen=True)
class Checked:
    kind: str  # 'select' | 'describe' | 'summarize' | 'explain'
    tables: tuple[str, ...]  # sorted 'schema.table' of every tier table read
    columns: tuple[str, ...]  # sorted 'schema.table.column' touched


MAX_SQL_CHARS = 32 * 1024  # a statement longer than this is refused unread


def check(
    sql: str,
    tier: Mapping[str, Mapping[str, Sequence[str]]],
    search_path: Sequence[str] = ("cur", "gold", "hist", "ops", "meta"),
) -> Checked:
    """tier: {schema: {table: [column, ...]}} of the analyst's tier file. Raises Refused, and
    nothing else: whatever the parsers make of a hostile text (nesting deep enough to exhaust
    the recursion limit), the answer is a refusal that can be audited."""
    if len(sql) > MAX_SQL_CHARS:
        raise Refused("too_long", f"The SQL is {len(sql):,} characters long; the workbench takes "
                      f"statements up to {MAX_SQL_CHARS:,}: shorten it (a CTE per step).")
    try:
        return _check(sql, tier, search_path)
    except Refused:
        raise
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError) as e:
        raise Refused("syntax", "The workbench cannot read this SQL safely ("
                      f"{type(e).__name__}); simplify it (less nesting) and retry.") from e


def _check(sql: str, tier: Mapping[str, Mapping[str, Sequence[str]]],
           search_path: Sequence[str]) -> Checked:
    stmt, kind, text = _one_statement(sql), "select", sql
    if isinstance(stmt, exp.Command) and stmt.name.upper() == "EXPLAIN":
        # sqlglot keeps EXPLAIN as an opaque Command: check what it explains, positions unchanged
        text = _blank_explain(sql)
        stmt, kind = _one_statement(text), "explain"
    if isinstance(stmt, (exp.Describe, exp.Summarize)) and kind == "select":
        kind = "describe" if isinstance(stmt, exp.Describe) else "summarize"
    elif not isinstance(stmt, _QUERY_NODES):  # a Command too: sqlglot did not model it
        word = stmt.name if isinstance(stmt, exp.Command) else stmt.key
        _refuse_not_read_only(f"EXPLAIN {word}" if kind == "explain" else word, text)
    names = {s.lower(): (s, {t.lower(): (t, c) for t, c in ts.items()}) for s, ts in tier.items()}
    read = {id(t): _resolve(t, sql, names, search_path) for t in _table_refs(stmt, sql)}
    _check_functions(stmt, sql)
    duckdb_agrees(sql)
    tables = {ref: cols for ref, cols in read.values()}
    body = stmt.this if isinstance(stmt, (exp.Describe, exp.Summarize)) else stmt
    if isinstance(body, exp.Table):  # DESCRIBE / SUMMARIZE of a table shows all of its columns
        touched = {f"{ref}.{c}" for ref, cols in tables.items() for c in cols}
    else:
        touched = _columns(body, read)
    for ref, cols in tables.items():  # a table read with no column named still reads its rows
        if not any(c.startswith(ref + ".") for c in touched):
            touched |= {f"{ref}.{c}" for c in cols}
    return Checked(kind, tuple(sorted(tables)), tuple(sorted(touched)))


def _refuse_not_read_only(word: str, sql: str) -> None:
    tokens = _tokens(sql)
    raise Refused("not_read_only", f"{word.upper()} statements are refused: only SELECT, DESCRIBE, "
                  "SUMMARIZE and EXPLAIN run here; ask the data team for anything else.",
                  *_at(sql, tokens[0].start if tokens else None))


def _at(sql: str, start: int | None) -> tuple[int | None, int | None]:
    """1-based line and column of a character offset."""
    if start is None:
        return None, None
    return sql.count("\n", 0, start) + 1, start - sql.rfind("\n", 0, start)


def _position(sql: str, node: exp.Expression) -> tuple[int | None, int | None]:
    """Where the node starts: its own token or its earliest part's (sqlglot keeps offsets there)."""
    return _at(sql, min((n.meta["start"] for n in node.walk() if "start" in n.meta), default=None))


def _tokens(sql: str) -> list:
    try:
        return sqlglot.Dialect.get_or_raise(_DIALECT).tokenize(sql)
    except TokenError:
        return []  # the parse that follows reports it


def _one_statement(sql: str) -> exp.Expression:
    tokens = _tokens(sql)
    if tokens and tokens[0].text.upper() in _WRITE_WORDS:
        _refuse_not_read_only(tokens[0].text, sql)
    try:
        parsed = sqlglot.parse(sql, read=_DIALECT)
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        why = re.sub(r" but got <Token.*>| for <class .*>", "", str(err.get("description", e)))
        line, col = err.get("line"), err.get("col")
        raise Refused("syntax", f"The SQL does not parse ({why}); check it near line {line}, "
                      f"column {col}.", line, col) from e
    except TokenError as e:
        raise Refused("syntax", "The SQL has an unterminated string, quoted name or comment; close "
                      "it and try again.") from e
    # sqlglot yields None for empty statements and Semicolon for a comment after the last ';'
    stmts = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if not stmts:
        raise Refused("syntax", "There is no statement to run; write a SELECT.")
    if len(stmts) > 1:  # point at what follows the first separating semicolon
        semi = sqlglot.TokenType.SEMICOLON
        after = [b for a, b in zip(tokens, tokens[1:]) if a.token_type == semi != b.token_type]
        line, col = _at(sql, after[0].start if after else None)
        raise Refused("multiple_statements", "Only one statement can run at a time; remove "
                      "everything after the first statement's semicolon.", line, col)
    return stmts[0]


def _blank_explain(sql: str) -> str:
    """The text with EXPLAIN [ANALYZE] overwritten by spaces, so positions stay those of `sql`."""
    for words in (("EXPLAIN",), ("ANALYZE", "ANALYSE")):
        tokens = _tokens(sql)
        tok = tokens[0] if tokens else None
        if tok and tok.text.upper() in words:
            sql = sql[: tok.start] + " " * (tok.end + 1 - tok.start) + sql[tok.end + 1:]
    return sql


def duckdb_agrees(sql: str) -> None:
    """DuckDB runs the raw text, so its own parser must also see exactly one read statement."""
    try:
        stmts = _duckdb_parser().cursor().extract_statements(sql)
    except duckdb.Error as e:
        first = str(e).splitlines()[0]
        raise Refused("syntax", f"DuckDB cannot parse the SQL ({first}); fix it and retry.") from e
    if len(stmts) != 1:
        raise Refused("multiple_statements", f"DuckDB reads {len(stmts)} statements here; run "
                      "exactly one statement at a time.")
    kinds = duckdb.StatementType
    if stmts[0].type not in (kinds.SELECT, kinds.EXPLAIN, kinds.MULTI):  # MULTI: DuckDB's PIVOT
        _refuse_not_read_only(stmts[0].type.name, sql)


@functools.cache
def _duckdb_parser() -> duckdb.DuckDBPyConnection:
    """An empty in-memory database used only for its parser; a cursor per call is thread-safe."""
    return duckdb.connect(":memory:")


def _table_refs(stmt: exp.Expression, sql: str) -> list[exp.Table]:
    """The statement's named table references, after refusing table functions in FROM."""
    if isinstance(stmt, exp.Describe) and isinstance(stmt.this, exp.Schema):
        # sqlglot reads `DESCRIBE f(...)` as a table with a column list: it is a function call
        name = stmt.this.this.name if isinstance(stmt.this.this, exp.Table) else "this"
        raise Refused("table_function", f"The table function {name}() is not allowed; DESCRIBE a "
                      "table of your tier or a SELECT instead.", *_position(sql, stmt.this))
    refs = []
    for node in stmt.find_all(exp.Table, exp.Lateral):
        func = node.this if isinstance(node, (exp.Table, exp.Lateral)) else None
        if isinstance(func, exp.Func) and not _safe_table_function(func):
            raise Refused("table_function", f"The table function {min(_func_names(func))}() is not "
                          "allowed; only range, generate_series and unnest may be used in FROM, so "
                          "read tables of your tier instead.", *_position(sql, node))
        if isinstance(node, exp.Table) and not isinstance(func, exp.Func) and not _is_cte(node):
            refs.append(node)
    return refs


def _safe_table_function(func: exp.Func) -> bool:
    if isinstance(func, exp.Anonymous):
        return func.name.lower() in _TABLE_FUNCTIONS
    return isinstance(func, _SAFE_TABLE_FUNC_NODES)


def _func_names(func: exp.Func) -> set[str]:
    """The name written, or for a function sqlglot typed (read_csv -> ReadCSV) the names it has."""
    return {func.name.lower()} if isinstance(func, exp.Anonymous) else {
        n.lower() for n in func.sql_names()}


def _is_cte(table: exp.Table) -> bool:
    """Whether an unqualified name means a CTE in scope: from the main query any of its CTEs, from
    inside a CTE only the earlier ones (and itself if RECURSIVE). Reading scope this strictly means
    a name we take for a CTE can never be a table DuckDB would look up instead."""
    if table.args.get("db") or table.args.get("catalog"):
        return False
    name, child, node = table.name.lower(), table, table.parent
    while node is not None:
        if isinstance(node, exp.With):
            idx = next((i for i, cte in enumerate(node.expressions) if cte is child), 0)
            visible = node.expressions[: idx + 1 if node.args.get("recursive") else idx]
        elif isinstance(node.args.get("with_"), exp.With) and node.args["with_"] is not child:
            visible = node.args["with_"].expressions
        else:
            visible = []
        if any(cte.alias_or_name.lower() == name for cte in visible):
            return True
        child, node = node, node.parent
    return False


def _resolve(table: exp.Table, sql: str, names: dict, search_path: Sequence[str]):
    """('schema.table', columns) of a reference to the tier, or Refused saying why not."""
    pos = _position(sql, table)
    catalog, schema, name = table.catalog, table.db, table.name
    if catalog or isinstance(table.this, exp.Dot):
        code = "system_catalog" if catalog.lower() in _SYSTEM_SCHEMAS else "other_database"
        raise Refused(code, f"{table.sql(_DIALECT)} names another database; only the tables of "
                      "your tier can be read, written as schema.table.", *pos)
    if schema.lower() in _SYSTEM_SCHEMAS:
        raise Refused("system_catalog", f"The system schema {schema} is not available; the tier's "
                      "tables and columns are listed in meta.data_dictionary.", *pos)
    ident = table.this
    literal = "start" in ident.meta and sql[ident.meta["start"]] == "'"
    if not schema and (literal or _FILE_CHARS & set(name)):
        raise Refused("file_path", f"'{name}' is read as a file or URL, which the workbench does "
                      "not allow; query a table of your tier instead.", *pos)
    schemas = [schema] if schema else list(search_path)
    for s in schemas:
        entry = names.get(s.lower())
        if entry and name.lower() in entry[1]:
            real, cols = entry[1][name.lower()]
            return f"{entry[0]}.{real}", cols
    known = [f"{s}.{t}" for s, ts in names.values() for t, _ in ts.values()]
    written = f"{schema}.{name}" if schema else name
    near = difflib.get_close_matches(written.lower(), known, n=3, cutoff=0.5) or [
        k for k in known if difflib.get_close_matches(name.lower(), [k.split(".")[1].lower()])]
    hint = f"did you mean {', '.join(near[:3])}?" if near else "see meta.data_dictionary."
    raise Refused("unknown_table", f"There is no table {written} in your tier; {hint}", *pos)


def _check_functions(stmt: exp.Expression, sql: str) -> None:
    for func in stmt.find_all(exp.Func):
        names = _func_names(func)
        bad = [n for n in names if n in _DENIED_FUNCTIONS or n.startswith(_DENIED_PREFIXES)]
        if bad:
            raise Refused("forbidden_function", f"The function {bad[0]}() reaches outside the tier "
                          "(files, settings, environment or nested SQL) and is not allowed; remove "
                          "it.", *_position(sql, func))


def _columns(body: exp.Expression, read: dict) -> set[str]:
    """'schema.table.column' for the columns each scope names, stars and unqualified names included
    (an unqualified name goes to every tier table in scope that has it)."""
    touched: set[str] = set()
    try:
        scopes = traverse_scope(body)
    except Exception:  # noqa: BLE001 - best effort: check() then reports all columns read
        return touched
    for scope in scopes:
        chain, s = [], scope
        while s is not None:  # correlated subqueries see the outer scopes' tables too
            chain.append({alias.lower(): read[id(src)] for alias, src in s.sources.items()
                          if isinstance(src, exp.Table) and id(src) in read})
            s = s.parent
        select = scope.expression
        projections = select.expressions if isinstance(select, exp.Select) else []
        stars = [p for p in projections if p.is_star]  # * and t.*
        for col in [*stars, *scope.columns]:
            table = col.table.lower() if isinstance(col, exp.Column) else ""
            for sources in chain[:1] if col.is_star else chain:
                hits = [(ref, c) for alias, (ref, cols) in sources.items() for c in cols
                        if table in ("", alias) and (col.is_star or c.lower() == col.name.lower())]
                if hits:
                    touched |= {f"{ref}.{c}" for ref, c in hits}
                    break
    return touched
