// Utilization from start/stop events: one row per node (or workflow, or user) with its busy share of
// the window and a bar per hour or day.
import { useCallback, useMemo } from "react";
import { useQuery } from "urql";

import { errorText } from "../client";
import { addCursor, Sentinel } from "../components/Sentinel";
import { UtilizationDocument, type UtilizationGroup } from "../generated/graphql";
import { counted } from "../format";
import { useListMemory, useScrollMemory } from "../listMemory";
import { oneOf, useQueryFields } from "../queryFields";

const WINDOWS = { "Last 24 hours": { hours: 24, bucket: "HOUR" }, "Last 7 days": { hours: 24 * 7, bucket: "DAY" },
  "Last 30 days": { hours: 24 * 30, bucket: "DAY" } } as const;
type Window = keyof typeof WINDOWS;
const PAGE_SIZE = 50;

function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// In the URL (/utilization?window=7d&by=WORKFLOW), as the other pages' searches: a reload keeps them.
const SPANS: Record<string, Window> = { "": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days" };
const GROUPS: UtilizationGroup[] = ["NODE", "WORKFLOW", "USER", "EXPERIMENT"];

function asked(query: URLSearchParams) {
  const code = query.get("window") ?? "";
  return { window: Object.hasOwn(SPANS, code) ? code : "", by: oneOf(query.get("by"), GROUPS) };
}

export function Utilization() {
  const { fields, set, settled } = useQueryFields(asked);
  useScrollMemory();  // Back from another page returns to where it was, its pages loaded (Groups)
  const span = SPANS[settled.window];
  const groupBy: UtilizationGroup = settled.by || "NODE";
  // The window ends now (rounded to the minute, so a re-render does not ask again).
  const variables = useMemo(() => {
    const to = new Date(Math.ceil(Date.now() / 60000) * 60000);
    const from = new Date(to.getTime() - WINDOWS[span].hours * 3600 * 1000);
    // Days from the reader's own midnight, not UTC's.
    const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || null;
    return { from: from.toISOString(), to: to.toISOString(), groupBy, bucket: WINDOWS[span].bucket, timeZone };
  }, [span, groupBy]);
  return (
    <section>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <select aria-label="Window" value={fields.window} onChange={(e) => set("window", e.target.value)}>
          {Object.entries(SPANS).map(([code, w]) => <option key={w} value={code}>{w}</option>)}
        </select>
        <select aria-label="Group by" value={fields.by || "NODE"} onChange={(e) => set("by", e.target.value === "NODE" ? "" : e.target.value)}>
          <option value="NODE">per node</option><option value="WORKFLOW">per workflow</option><option value="USER">per user</option><option value="EXPERIMENT">per experiment</option>
        </select>
      </form>
      <p className="muted">Busy time from start and stop events (NODE_START/NODE_STOP, WORKFLOW_START/WORKFLOW_COMPLETE, EXPERIMENT_START/EXPERIMENT_COMPLETE, in either case); overlapping sessions count once.</p>
      <Groups key={JSON.stringify(variables)} variables={variables} remember={`utilization ${settled.window} ${groupBy}`} />
    </section>
  );
}

type Variables = { from: string; to: string; groupBy: UtilizationGroup; bucket: "HOUR" | "DAY"; timeZone: string | null };

// Keyed by the window and grouping: another starts again from the first page. Its pages are
// remembered (`remember`) by the window's length and the grouping, not its times: Back a minute later
// asks for the window ending then, from the same cursors (groups page in name order: they still apply).
function Groups({ variables, remember }: { variables: Variables; remember: string }) {
  const [cursors, setCursors] = useListMemory(remember);
  const more = useCallback((cursor: string) => setCursors(addCursor(cursor)), []);
  return (
    <table className="events utilization" data-testid="utilization">
      <thead>
        <tr>
          <th>{{ NODE: "Node", WORKFLOW: "Workflow", USER: "User", EXPERIMENT: "Experiment" }[variables.groupBy] ?? "Group"}</th>
          <th colSpan={2}>Busy share</th><th>Busy time</th>
          <th>{`Per ${variables.bucket === "HOUR" ? "hour" : "day"}, `}{new Date(variables.from).toLocaleString()} → {new Date(variables.to).toLocaleString()}</th>
        </tr>
      </thead>
      {cursors.map((after, i) => (
        <GroupsPage key={after ?? "first"} variables={variables} after={after} last={i === cursors.length - 1} onMore={more} />
      ))}
    </table>
  );
}

function GroupsPage({ variables, after, last, onMore }: {
  variables: Variables; after: string | null; last: boolean; onMore: (cursor: string) => void;
}) {
  const [{ data, error }] = useQuery({ query: UtilizationDocument, variables: { ...variables, first: PAGE_SIZE, after } });
  if (error) return <tbody><tr><td colSpan={5}><p role="alert" className="error">{errorText(error)}</p></td></tr></tbody>;
  if (!data) return null;
  const rows = data.utilization.edges.map((e) => e.node);
  const next = data.utilization.pageInfo.hasNextPage ? data.utilization.pageInfo.endCursor : null;
  return (
    <tbody>
      {after === null && rows.length === 0 && <tr><td colSpan={5} className="muted">No sessions in this window.</td></tr>}
      {rows.map((row) => {
        const peak = Math.max(...row.buckets.map((b) => b.utilization), 0.0001);
        return (
          <tr key={row.group} data-testid="utilization-row">
            <td><strong>{row.group}</strong></td>
            <td className="share"><span className="bar" style={{ width: `${Math.min(100, row.utilization * 100)}%` }} /></td>
            <td>{(row.utilization * 100).toFixed(1)}%</td>
            <td>{duration(row.busySeconds)} busy, {counted(row.sessions, "session")}</td>
            <td>
              <svg className="spark" viewBox={`0 0 ${row.buckets.length} 1`} preserveAspectRatio="none" aria-label="busy share per bucket">
                {row.buckets.map((b, i) => (
                  <rect key={b.start} x={i + 0.1} width={0.8} y={1 - b.utilization / peak} height={b.utilization / peak}>
                    <title>{`${new Date(b.start).toLocaleString()}: ${(b.utilization * 100).toFixed(0)}%`}</title>
                  </rect>
                ))}
              </svg>
            </td>
          </tr>
        );
      })}
      {last && next && <tr><td colSpan={5}><Sentinel next={next} onMore={onMore} /></td></tr>}
    </tbody>
  );
}
