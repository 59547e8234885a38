// A JSON value as a collapsible tree (<details>): large values stay readable, and nothing is
// parsed as HTML (React escapes every string).
import { useState } from "react";

// Entries of one array or object drawn at first: a spectrum of 50,000 points drawn whole was
// 150,000 elements (2 s, and a page 800,000 pixels tall); the rest come on request.
const SHOWN = 100;

export function JsonTree({ value, name, depth = 0 }: { value: unknown; name?: string; depth?: number }) {
  const [shown, setShown] = useState(SHOWN);
  const key = name !== undefined ? <span className="json-key">{name}: </span> : null;
  if (value === null || typeof value !== "object") {
    return <div className="json-leaf">{key}<span className={`json-${value === null ? "null" : typeof value}`}>{JSON.stringify(value)}</span></div>;
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  const rest = entries.length - shown;
  return (
    <details className="json-node" open={depth < 2}>
      <summary>{key}<span className="muted">{summary}</span></summary>
      {entries.slice(0, shown).map(([k, v]) => <JsonTree key={k} name={k} value={v} depth={depth + 1} />)}
      {rest > 0 && (
        <button type="button" className="json-more" onClick={() => setShown(shown + SHOWN * 10)}>
          Show {Math.min(rest, SHOWN * 10).toLocaleString()} more (of {rest.toLocaleString()} not shown)
        </button>
      )}
    </details>
  );
}
