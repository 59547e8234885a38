// Collections, and one collection's items (path, split, asset), both scrolled a page at a time.
import { useCallback } from "react";
import { useQuery } from "urql";
import { Link } from "wouter";

import { errorText } from "../client";
import { AssetRow } from "../components/AssetRow";
import { JsonTree } from "../components/JsonTree";
import { addCursor, Sentinel } from "../components/Sentinel";
import { CollectionItemsDocument, CollectionListDocument } from "../generated/graphql";
import { counted, when } from "../format";
import { useListMemory, useScrollMemory } from "../listMemory";
import { useQueryFields } from "../queryFields";

const PAGE_SIZE = 50;

/** The search a query string asks for (/collections?name=plate). */
const asked = (query: URLSearchParams) => ({ name: query.get("name") ?? "" });

export function CollectionList() {
  const { fields, set, settled } = useQueryFields(asked);
  useScrollMemory();
  const name = settled.name.trim() || null;
  return (
    <section>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <input aria-label="Collection name contains" placeholder="Name contains…" value={fields.name} onChange={(e) => set("name", e.target.value)} />
      </form>
      <CollectionPages key={name} name={name} />
    </section>
  );
}

// Keyed by the name searched: a new search starts again from the first page. Back from a collection
// returns to the pages loaded, where the list was scrolled (listMemory.ts).
function CollectionPages({ name }: { name: string | null }) {
  const [cursors, setCursors] = useListMemory(`collections ${name ?? ""}`);
  const more = useCallback((cursor: string) => setCursors(addCursor(cursor)), []);
  return (
    <div className="asset-list" data-testid="collections">
      {cursors.map((after, i) => (
        <CollectionsPage key={after ?? "first"} name={name} after={after} last={i === cursors.length - 1} onMore={more} />
      ))}
    </div>
  );
}

function CollectionsPage({ name, after, last, onMore }: { name: string | null; after: string | null; last: boolean; onMore: (c: string) => void }) {
  const [{ data, error }] = useQuery({ query: CollectionListDocument, variables: { nameContains: name, first: PAGE_SIZE, after, withCount: after === null } });
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return null;
  const next = data.collections.pageInfo.hasNextPage ? data.collections.pageInfo.endCursor : null;
  return (
    <>
      {after === null && <p className="muted">{counted(data.collections.totalCount ?? 0, "collection")}</p>}
      {data.collections.edges.map(({ node }) => (
        <Link key={node.id} href={`/collections/${encodeURIComponent(node.id)}`} className="collection-row" data-testid="collection-row">
          <span className="name">{node.name}</span>
          <span className="muted">{counted(node.itemCount, "item")}</span>
          <span className="muted">{node.description ?? ""}</span>
          <span className="muted">updated {when(node.updatedAt)}</span>
        </Link>
      ))}
      {last && next && <Sentinel next={next} onMore={onMore} />}
    </>
  );
}

export function CollectionPage({ id }: { id: string }) {
  const [cursors, setCursors] = useListMemory(`collection ${id}`);  // Back from an item returns to it
  useScrollMemory();
  const more = useCallback((cursor: string) => setCursors(addCursor(cursor)), []);
  return (
    <section className="asset-list" data-testid="collection-items">
      {cursors.map((after, i) => <ItemsPage key={after ?? "first"} id={id} after={after} last={i === cursors.length - 1} onMore={more} />)}
    </section>
  );
}

function ItemsPage({ id, after, last, onMore }: { id: string; after: string | null; last: boolean; onMore: (c: string) => void }) {
  const [{ data, error }] = useQuery({ query: CollectionItemsDocument, variables: { id, first: PAGE_SIZE, after } });
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return null;
  const collection = data.collection;
  if (!collection) return <p className="error">No collection {id}.</p>;
  const next = collection.items.pageInfo.hasNextPage ? collection.items.pageInfo.endCursor : null;
  return (
    <>
      {after === null && (
        <header>
          <h1 data-testid="collection-name">{collection.name}</h1>
          {collection.description && <p>{collection.description}</p>}
          <p className="muted">{counted(collection.itemCount, "item")}</p>
          {Object.keys(collection.metadata as object ?? {}).length > 0 && <div className="json"><JsonTree value={collection.metadata} /></div>}
        </header>
      )}
      {collection.items.edges.map(({ node }) => (
        <div key={node.id} className="item">
          {node.split && <span className="badge split">{node.split}</span>}
          <AssetRow asset={node.asset} path={node.path} />
        </div>
      ))}
      {last && next && <Sentinel next={next} onMore={onMore} />}
    </>
  );
}
