// Assets with search and infinite scroll: each page is its own query, started from the previous
// page's endCursor when the sentinel at the bottom comes into view (urql's recommended pattern:
// pages stay cached separately and a new filter starts over from the first).
import { useCallback, useEffect, useState } from "react";
import { useQuery } from "urql";

import { errorText } from "../client";
import { AssetRow } from "../components/AssetRow";
import { addCursor, Sentinel } from "../components/Sentinel";
import { AssetCountDocument, AssetListDocument, type AssetFilter, type AssetKind, type AssetStatus } from "../generated/graphql";
import { counted, words } from "../format";
import { parsePredicates, PREDICATE_HELP } from "../predicates";
import { useListMemory, useScrollMemory } from "../listMemory";
import { oneOf, useQueryFields } from "../queryFields";

const PAGE_SIZE = 50;
const GRID_PAGE_SIZE = 100; // cards are small: a page fills a large screen
const KINDS: AssetKind[] = ["FILE", "VALUE", "TEXT", "EXTERNAL"];
const STATUSES: AssetStatus[] = ["ACTIVE", "PENDING", "FAILED"];
const EVERY: AssetFilter = { nameContains: null, labelsAll: null, kinds: null, statuses: null, metadata: null, value: null };
// The list or the grid, as the user left it: someone who browses images by their thumbnails should
// not have to ask for the grid again each visit (a choice of display, not a secret: localStorage).
type View = "list" | "grid";
const VIEW_KEY = "graphlake.assetView";
const savedView = (): View => (localStorage.getItem(VIEW_KEY) === "grid" ? "grid" : "list");

/** The search a query string asks for (/assets?labels=plate&kind=FILE; unknown values as their defaults). */
function asked(query: URLSearchParams) {
  return { name: query.get("name") ?? "", labels: query.get("labels") ?? "", kind: oneOf(query.get("kind"), KINDS),
           status: oneOf(query.get("status"), STATUSES), metadata: query.get("metadata") ?? "", value: query.get("value") ?? "" };
}

export function AssetList() {
  const { fields, set, settled } = useQueryFields(asked);
  const { name, labels, kind, status, metadata, value } = fields;
  const [view, setView] = useState<View>(savedView);
  useScrollMemory();
  useEffect(() => localStorage.setItem(VIEW_KEY, view), [view]);
  // A predicate that cannot be read says why, and the list stays as it was meanwhile.
  const [filter, setFilter] = useState<AssetFilter | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    const byMetadata = parsePredicates(settled.metadata);
    const byValue = parsePredicates(settled.value);
    if ("error" in byMetadata || "error" in byValue) {
      setProblem("error" in byMetadata ? `Metadata: ${byMetadata.error}` : `Value: ${(byValue as { error: string }).error}`);
      setFilter((old) => old ?? EVERY);
      return;
    }
    setProblem(null);
    setFilter({ nameContains: settled.name.trim() || null, labelsAll: words(settled.labels), kinds: settled.kind ? [settled.kind] : null,
      statuses: settled.status ? [settled.status] : null, metadata: byMetadata.predicates, value: byValue.predicates });
  }, [settled]);

  return (
    <section>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <input aria-label="Name contains" placeholder="Name contains…" value={name} onChange={(e) => set("name", e.target.value)} />
        <input aria-label="Labels" placeholder="Labels (all of, comma-separated)" value={labels} onChange={(e) => set("labels", e.target.value)} />
        <select aria-label="Kind" value={kind} onChange={(e) => set("kind", e.target.value)}>
          <option value="">Any kind</option>
          {KINDS.map((k) => <option key={k}>{k}</option>)}
        </select>
        <select aria-label="Status" value={status} onChange={(e) => set("status", e.target.value)}>
          <option value="">Any status</option>
          {STATUSES.map((s) => <option key={s}>{s}</option>)}
        </select>
        <input aria-label="Metadata" className="wide" placeholder="Metadata: plate = 7; operator ~ ali" title={PREDICATE_HELP}
          value={metadata} onChange={(e) => set("metadata", e.target.value)} />
        <input aria-label="Value" className="wide" placeholder="Value: temperature > 20" title={PREDICATE_HELP}
          value={value} onChange={(e) => set("value", e.target.value)} />
        <button type="button" onClick={() => setView(view === "list" ? "grid" : "list")}>
          {view === "list" ? "Grid" : "List"}
        </button>
      </form>
      {problem && <p role="alert" className="error">{problem}</p>}
      {/* Keyed by the view too: its pages are of another size, so the cursors start over. */}
      {filter && <Pages key={`${view} ${JSON.stringify(filter)}`} filter={filter} view={view} />}
    </section>
  );
}

function Pages({ filter, view }: { filter: AssetFilter; view: View }) {
  const [cursors, setCursors] = useListMemory(`assets ${view} ${JSON.stringify(filter)}`);
  const more = useCallback((cursor: string) => setCursors(addCursor(cursor)), []);
  return (
    <div className={view === "grid" ? "asset-grid" : "asset-list"} data-testid="assets">
      <Count filter={filter} />
      {cursors.map((after, i) => (
        <Page key={after ?? "first"} filter={filter} after={after} first={i === 0} last={i === cursors.length - 1}
          onMore={more} grid={view === "grid"} />
      ))}
    </div>
  );
}

function Page({ filter, after, first, last, onMore, grid }: {
  filter: AssetFilter; after: string | null; first: boolean; last: boolean; onMore: (cursor: string) => void; grid: boolean;
}) {
  const size = grid ? GRID_PAGE_SIZE : PAGE_SIZE;
  const [{ data, error, fetching }] = useQuery({ query: AssetListDocument, variables: { filter, first: size, after, withCount: false } });
  const next = data?.assets.pageInfo.hasNextPage ? data.assets.pageInfo.endCursor : null;
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return fetching ? <p className="muted">Loading…</p> : null;
  const edges = data.assets.edges;
  return (
    <>
      {first && edges.length === 0 && <p className="muted">No asset matches.</p>}
      {edges.map(({ node }) => (
        <AssetRow key={node.id} asset={node} thumbnail={grid} />
      ))}
      {last && next && <Sentinel next={next} onMore={onMore} />}
    </>
  );
}


/** The list's count, asked on its own beside the first page (counting every match is the slow part). */
function Count({ filter }: { filter: AssetFilter }) {
  const [{ data, error }] = useQuery({ query: AssetCountDocument, variables: { filter } });
  // A refused search says why beside the list (Page): the count then says nothing, not "Counting…" for good.
  return <p className="muted count" data-testid="asset-count">{data ? counted(data.assets.totalCount, "asset") : error ? "" : "Counting…"}</p>;
}
