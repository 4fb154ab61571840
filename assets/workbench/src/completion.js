// Editor completion data from the schema: the lang-sql namespace (cur.<table>.<column>)
// and a source offering bare column names anywhere a word is typed.

export function completionNamespace(tables) {
  const ns = {};
  for (const t of tables) {
    const columns = (t.columns || []).map((c) => ({
      label: c.name, type: "property", detail: c.type, info: c.comment || undefined,
    }));
    (ns[t.schema] ||= {})[t.name] = {
      self: { label: t.name, type: "type", detail: "table", info: t.comment || undefined },
      children: columns,
    };
  }
  return ns;
}

export function columnCompletionSource(tables) {
  const byName = new Map();
  for (const t of tables) {
    for (const c of t.columns || []) {
      const prev = byName.get(c.name);
      if (prev) { prev.tables.push(t.name); continue; }
      byName.set(c.name, { name: c.name, type: c.type, comment: c.comment, tables: [t.name] });
    }
  }
  const options = [...byName.values()].map((c) => ({
    label: c.name, type: "property", boost: -1,
    detail: `${c.type || ""} · ${c.tables.slice(0, 2).join(", ")}${c.tables.length > 2 ? ", …" : ""}`,
    info: c.comment || undefined,
  }));
  return (context) => {
    const word = context.matchBefore(/[\w$]+/);
    if (!word && !context.explicit) return null;
    const from = word ? word.from : context.pos;
    if (from > 0 && /[."]/.test(context.state.sliceDoc(from - 1, from))) return null; // qualified: lang-sql's job
    return { from, options, validFor: /^[\w$]*$/ };
  };
}
