// A JSON value as a collapsible tree (<details>): large values stay readable, and nothing is
// parsed as HTML (React escapes every string).
export function JsonTree({ value, name, depth = 0 }: { value: unknown; name?: string; depth?: number }) {
  const key = name !== undefined ? <span className="json-key">{name}: </span> : null;
  if (value === null || typeof value !== "object") {
    return <div className="json-leaf">{key}<span className={`json-${value === null ? "null" : typeof value}`}>{JSON.stringify(value)}</span></div>;
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  return (
    <details className="json-node" open={depth < 2}>
      <summary>{key}<span className="muted">{summary}</span></summary>
      {entries.map(([k, v]) => <JsonTree key={k} name={k} value={v} depth={depth + 1} />)}
    </details>
  );
}
