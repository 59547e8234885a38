// The event log, live: the latest events first, then each new one as the server pushes it
// (subscription over graphql-ws). Pause holds new events back (counted) until Resume. Scrolling
// down loads older events a page at a time.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useClient } from "urql";

import { errorText, type SocketStatus } from "../client";
import { JsonTree } from "../components/JsonTree";
import { Sentinel } from "../components/Sentinel";
import { LiveEventsDocument, RecentEventsDocument, type EventFilter, type EventOrigin, type EventRowFragment, type LogLevel } from "../generated/graphql";
import { when, words } from "../format";
import { oneOf, useQueryFields } from "../queryFields";
import { useSession } from "../session";

const LEVELS: LogLevel[] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const PAGE = 50;
const KEEP = 2000; // events kept on screen; older ones drop off the bottom (and load again by scrolling)

// Whose events: what the lab's clients logged (the default: every mutation also writes an AUDIT
// event, which would bury them), the lake's own, or both. In the query string as `from=lake|all`.
const ORIGINS: Record<string, EventOrigin | ""> = { "": "CLIENT", lake: "LAKE", all: "" };

// The filters live in the query string too (/events?types=A,B&level=ERROR&node=n1&from=all): a link
// or a reload opens the same stream.
function filterOf({ types, level, node, from }: Asked): EventFilter {
  return { includeArchived: false, eventTypes: words(types), minLevel: (level as LogLevel) || null,
           source: node.trim() ? { nodeId: node.trim() } : null,
           origin: (Object.hasOwn(ORIGINS, from) ? ORIGINS[from] : "CLIENT") || null };
}

type Asked = { types: string; level: LogLevel | ""; node: string; from: string };

/** The filters a query string asks for (unknown values as their defaults). */
function asked(query: URLSearchParams): Asked {
  const from = query.get("from") ?? "";
  return { types: query.get("types") ?? "", level: oneOf(query.get("level"), LEVELS), node: query.get("node") ?? "",
           from: Object.hasOwn(ORIGINS, from) ? from : "" };
}

export function Events() {
  const { fields, set, settled } = useQueryFields(asked);
  const { types, level, node, from } = fields;
  // One object per search: Stream subscribes per filter object, and a trailing space or comma typed
  // makes the same filter, which must not restart the stream (and drop the older pages loaded).
  const wanted = JSON.stringify(filterOf(settled));
  const filter = useMemo(() => JSON.parse(wanted) as EventFilter, [wanted]);

  return (
    <section>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <input aria-label="Event types" placeholder="Event types (comma-separated)" value={types} onChange={(e) => set("types", e.target.value)} />
        <select aria-label="Minimum level" value={level} onChange={(e) => set("level", e.target.value)}>
          <option value="">Any level</option>
          {LEVELS.map((l) => <option key={l} value={l}>{l} and above</option>)}
        </select>
        <input aria-label="Source node" placeholder="Source node" value={node} onChange={(e) => set("node", e.target.value)} />
        <select aria-label="Logged by" value={Object.hasOwn(ORIGINS, from) ? from : ""} onChange={(e) => set("from", e.target.value)}
                title="The lake's own events: an AUDIT event for every change, asset status, alert failures, scheduled backups">
          <option value="">Logged by clients</option>
          <option value="lake">The lake's own events</option>
          <option value="all">Both</option>
        </select>
      </form>
      <Stream key={JSON.stringify(filter)} filter={filter} />
    </section>
  );
}

/** An event whose own time is over a minute before the lake received it (logged late, or back-dated):
 *  said beside its time, since the list is in the order received. */
function late(e: EventRowFragment): boolean {
  return Date.parse(e.receivedAt as string) - Date.parse(e.timestamp as string) > 60_000;
}

function Stream({ filter }: { filter: EventFilter }) {
  const client = useClient();
  const [events, setEvents] = useState<EventRowFragment[]>([]);
  const [held, setHeld] = useState<EventRowFragment[]>([]);
  const [paused, setPaused] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [socket, setSocket] = useState<SocketStatus>("connecting");
  // Paging back: each event a query gave has its cursor (live ones have none); `oldest` is the
  // filter's oldest event once a page said there is none after it.
  const cursors = useRef(new Map<string, string>());
  const [oldest, setOldest] = useState<string | null>(null);
  const loading = useRef(false);
  const trimmed = useRef(false);  // live events pushed some off the bottom
  const lastShown = useRef<string | undefined>(undefined);
  const { onSocket } = useSession();
  useEffect(() => onSocket(setSocket), [onSocket]);
  // The live handler reads these as they are now, not as of its render: set with the state they mirror.
  const pausedRef = useRef(paused);
  const heldRef = useRef<EventRowFragment[]>([]);

  type Page = { edges: { cursor: string; node: EventRowFragment }[]; pageInfo: { hasNextPage: boolean } };
  const remember = useCallback((page: Page, after: string | undefined) => {
    page.edges.forEach((e) => cursors.current.set(e.node.id, e.cursor));
    if (!page.pageInfo.hasNextPage) setOldest(page.edges.at(-1)?.node.id ?? after ?? null);
  }, []);

  useEffect(() => {
    const add = (list: EventRowFragment[], more: EventRowFragment[]) => {
      const seen = new Set(list.map((e) => e.id));
      const all = [...more.filter((e) => !seen.has(e.id)), ...list];
      if (all.length > KEEP) trimmed.current = true;
      return all.slice(0, KEEP);
    };
    let current = true;
    let live: { unsubscribe: () => void } | null = null;
    void client.query(RecentEventsDocument, { filter, first: PAGE }, { requestPolicy: "network-only" }).toPromise().then((r) => {
      if (!current) return;
      if (r.error) setError(errorText(r.error));
      const recent = r.data?.events.edges.map((e) => e.node) ?? [];
      if (r.data) remember(r.data.events, undefined);
      setEvents(recent);
      live = client.subscription(LiveEventsDocument, { filter, after: recent[0]?.id ?? null }).subscribe((result) => {
        if (result.error) { setError(errorText(result.error)); return; }
        const event = result.data?.events;
        if (!event) return;
        if (pausedRef.current) {  // kept in the ref at once: a Resume before the next render takes it too
          heldRef.current = add(heldRef.current, [event]);
          setHeld(heldRef.current);
        } else setEvents((list) => add(list, [event]));
      });
    });
    return () => { current = false; live?.unsubscribe(); };
  }, [client, filter, remember]);

  const last = events.at(-1);
  lastShown.current = last?.id;
  const olderFrom = last && last.id !== oldest ? cursors.current.get(last.id) ?? null : null;
  const loadOlder = useCallback(async (cursor: string) => {
    if (loading.current) return;  // one page at a time (the sentinel may fire again meanwhile)
    loading.current = true;
    const after = lastShown.current;
    try {
      const r = await client.query(RecentEventsDocument, { filter, first: PAGE, after: cursor }, { requestPolicy: "network-only" }).toPromise();
      if (r.error) { setError(errorText(r.error)); return; }
      if (!r.data) return;
      const page = r.data.events;
      remember(page, after);
      setEvents((list) => {
        // Live events trimmed the list meanwhile: this page no longer follows its end (the sentinel asks again).
        if (list.at(-1)?.id !== after) return list;
        const seen = new Set(list.map((e) => e.id));
        return [...list, ...page.edges.map((e) => e.node).filter((e) => !seen.has(e.id))];
      });
    } finally {
      loading.current = false;
    }
  }, [client, filter, remember]);

  const pause = () => {
    pausedRef.current = true;
    setPaused(true);
  };
  const resume = () => {
    const taken = heldRef.current;
    heldRef.current = [];
    pausedRef.current = false;
    setEvents((list) => {
      if (taken.length + list.length > KEEP) trimmed.current = true;
      return [...taken, ...list].slice(0, KEEP);
    });
    setHeld([]);
    setPaused(false);
  };
  return (
    <>
      <p className="toolbar">
        {paused
          ? <button type="button" onClick={resume}>Resume{held.length > 0 && ` (${held.length} new)`}</button>
          : <button type="button" onClick={pause}>Pause</button>}
        <span className={`socket socket-${socket}`} data-testid="stream-status">{paused ? "paused" : socket}</span>
      </p>
      {error && <p role="alert" className="error">{error}</p>}
      <table className="events" data-testid="events">
        <thead><tr><th title="Listed in the order the lake received them, newest first; the time is the sender's">Time</th><th>Level</th><th>Type</th><th>Message</th><th>Source</th><th>Data</th></tr></thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id} className={`level-${e.level}${e.alert ? " alert" : ""}`} data-testid="event-row">
              <td title={`received ${when(e.receivedAt)}`}>{when(e.timestamp)}{late(e) && <span className="muted"> (sent late)</span>}</td>
              <td>{e.level}</td>
              <td>{e.eventType}</td>
              <td>{e.message}</td>
              <td>{Object.entries(e.source).filter(([k, v]) => k !== "__typename" && v).map(([k, v]) => `${k}: ${v}`).join(", ")}</td>
              <td>{Object.keys(e.data as object ?? {}).length > 0 && <JsonTree value={e.data} depth={2} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {olderFrom && <Sentinel next={olderFrom} onMore={loadOlder} />}
      {!olderFrom && trimmed.current && last && last.id !== oldest && (
        <p className="muted">Older events dropped off this page as new ones came: reload it to page through them.</p>
      )}
      {events.length === 0 && !error && <p className="muted">{
        filter.eventTypes?.length || filter.minLevel || filter.source
          ? `No event matches these filters (event types match exactly, capitals too${filter.origin === "CLIENT"
              ? "; the lake's own, such as AUDIT, are under \"Logged by\"" : ""}); new ones appear here as they are logged.`
          : filter.origin === "CLIENT"
            ? "No events logged by clients yet; new ones appear here as they are logged (the lake's own are under \"Logged by\")."
            : "No events yet; new ones appear here as they are logged."}</p>}
    </>
  );
}
