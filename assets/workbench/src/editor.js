// The SQL editor: CodeMirror 6 with SQL highlighting, schema completion, Mod-Enter to run,
// and error marks at the line/column the server reports.
import { basicSetup } from "codemirror";
import { EditorView, keymap } from "@codemirror/view";
import { EditorState, Compartment, Prec } from "@codemirror/state";
import { sql, PostgreSQL } from "@codemirror/lang-sql";
import { setDiagnostics } from "@codemirror/lint";

const DRAFT_KEY = "huiliu.workbench.draft";
const language = new Compartment();
let view = null;
let lastRunFrom = 0; // document offset the last run text started at (selection runs)

const sqlLanguage = (schema, columnSource) => [
  sql({ dialect: PostgreSQL, schema: schema || {}, upperCaseKeywords: true }),
  columnSource ? EditorState.languageData.of(() => [{ autocomplete: columnSource }]) : [],
];

export function createEditor(parent, { onRun }) {
  const runKey = { key: "Mod-Enter", run: () => { onRun(); return true; }, preventDefault: true };
  view = new EditorView({
    parent,
    state: EditorState.create({
      doc: sessionStorage.getItem(DRAFT_KEY) || "SELECT *\nFROM \nLIMIT 100",
      extensions: [
        Prec.highest(keymap.of([runKey])),
        basicSetup,
        language.of(sqlLanguage()),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": "SQL 编辑器 SQL editor" }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) sessionStorage.setItem(DRAFT_KEY, u.state.doc.toString());
        }),
      ],
    }),
  });
  return view;
}

// Schema for completion: {schemaName: {tableName: {self, children: [columns]}}},
// plus an extra source for bare column names.
export function setCompletionSchema(namespace, columnSource) {
  view.dispatch({ effects: language.reconfigure(sqlLanguage(namespace, columnSource)) });
}

// The selected text when there is a selection, else the whole document.
export function textToRun() {
  const sel = view.state.selection.main;
  if (!sel.empty) {
    lastRunFrom = sel.from;
    return view.state.sliceDoc(sel.from, sel.to);
  }
  lastRunFrom = 0;
  return view.state.doc.toString();
}

export const getDoc = () => view.state.doc.toString();

export function setDoc(text) {
  view.dispatch({
    changes: { from: 0, to: view.state.doc.length, insert: text },
    selection: { anchor: text.length },
    effects: setDiagnostics(view.state, []).effects,
  });
  view.focus();
}

export function insertAtCursor(text) {
  const sel = view.state.selection.main;
  view.dispatch({
    changes: { from: sel.from, to: sel.to, insert: text },
    selection: { anchor: sel.from + text.length },
    scrollIntoView: true,
  });
  view.focus();
}

// Mark the error position (1-based line/column relative to the text last run).
export function markError(message, line, column) {
  const doc = view.state.doc;
  if (line == null) return;
  const base = doc.lineAt(lastRunFrom);
  const lineNo = Math.min(doc.lines, Math.max(1, base.number + line - 1));
  const target = doc.line(lineNo);
  const startCol = lineNo === base.number ? lastRunFrom - base.from : 0;
  const from = Math.min(target.to, target.from + startCol + Math.max(0, (column || 1) - 1));
  const word = /^\w+/.exec(doc.sliceString(from, target.to));
  const to = word ? from + word[0].length : Math.min(target.to, from + 1);
  const diagnostic = { from, to: Math.max(to, from), severity: "error", message };
  view.dispatch({
    ...setDiagnostics(view.state, [diagnostic]),
    selection: { anchor: from },
    scrollIntoView: true,
  });
  view.focus();
}

export function clearMarks() {
  view.dispatch(setDiagnostics(view.state, []));
}
