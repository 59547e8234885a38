// Datasets and their immutable versions: datums per split, the manifest hash (what a version
// holds, so two equal hashes hold the same), its content file, its parent and its annotation sets.
// Both lists load a page at a time as they scroll (the versions newest first); the datasets are
// searched by name on the server, the search kept in the URL (/datasets?name=plate).
import { useCallback, useEffect, useState } from "react";
import { useClient, useQuery } from "urql";
import { Link } from "wouter";

import { errorText } from "../client";
import { assetHref } from "../components/AssetRow";
import { useSignedDownload } from "../components/SignedDownload";
import { addCursor, Sentinel } from "../components/Sentinel";
import {
  DatasetDetailDocument, DatasetListDocument, DatasetVersionsDocument, VersionContentUrlDocument, VersionDiffDocument,
  VersionVerificationDocument, type DiffDatumFragment, type VersionRowFragment, type VersionVerificationQuery,
} from "../generated/graphql";
import { bytes, counted, when } from "../format";
import { useListMemory, useScrollMemory } from "../listMemory";
import { useQueryFields } from "../queryFields";

const PAGE_SIZE = 50;

/** The search a query string asks for (/datasets?name=plate). */
const asked = (query: URLSearchParams) => ({ name: query.get("name") ?? "" });

export function DatasetList() {
  const { fields, set, settled } = useQueryFields(asked);
  useScrollMemory();
  const name = settled.name.trim() || null;
  return (
    <section>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <input aria-label="Dataset name contains" placeholder="Name contains…" value={fields.name} onChange={(e) => set("name", e.target.value)} />
      </form>
      <DatasetPages key={name} name={name} />
    </section>
  );
}

// Keyed by the name searched: a new search starts again from the first page. Back from a dataset
// returns to the pages loaded, where the list was scrolled (listMemory.ts).
function DatasetPages({ name }: { name: string | null }) {
  const [cursors, setCursors] = useListMemory(`datasets ${name ?? ""}`);
  const more = useCallback((cursor: string) => setCursors(addCursor(cursor)), []);
  return (
    <div className="asset-list" data-testid="datasets">
      {cursors.map((after, i) => <DatasetsPage key={after ?? "first"} name={name} after={after} last={i === cursors.length - 1} onMore={more} />)}
    </div>
  );
}

function DatasetsPage({ name, after, last, onMore }: { name: string | null; after: string | null; last: boolean; onMore: (c: string) => void }) {
  const [{ data, error }] = useQuery({ query: DatasetListDocument, variables: { nameContains: name, first: PAGE_SIZE, after, withCount: after === null } });
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return after === null ? <p className="muted">Loading…</p> : null;
  const next = data.datasets.pageInfo.hasNextPage ? data.datasets.pageInfo.endCursor : null;
  return (
    <>
      {after === null && <p className="muted" data-testid="dataset-count">{counted(data.datasets.totalCount ?? 0, "dataset")}</p>}
      {data.datasets.edges.map(({ node }) => (
        <Link key={node.id} href={`/datasets/${encodeURIComponent(node.id)}`} className="collection-row" data-testid="dataset-row">
          <span className="name">{node.name}</span>
          <span className="muted">{node.latest ? `latest ${node.latest.version}: ${node.latest.datumCount} datums` : "no version yet"}</span>
          <span className="muted">{node.description ?? ""}</span>
          <span className="muted">created {when(node.createdAt)}</span>
        </Link>
      ))}
      {last && next && <Sentinel next={next} onMore={onMore} />}
    </>
  );
}

/** What a page of versions reported up: its rows (newest first) and the cursor of the page before it. */
type LoadedPage = { rows: VersionRowFragment[]; older: string | null };

export function DatasetPage({ id }: { id: string }) {
  const [{ data, error }] = useQuery({ query: DatasetDetailDocument, variables: { id } });
  // The versions' pages, each keyed by the `before` cursor it was asked with (null: the newest).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [loaded, setLoaded] = useState<Record<string, LoadedPage>>({});
  const more = useCallback((cursor: string) => setCursors(addCursor(cursor)), []);
  const onLoaded = useCallback((key: string, page: LoadedPage) => setLoaded((pages) => ({ ...pages, [key]: page })), []);
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return <p className="muted">Loading…</p>;
  const dataset = data.dataset;
  if (!dataset) return <p className="error">No dataset {id}.</p>;
  const versions = cursors.flatMap((c) => loaded[c ?? "first"]?.rows ?? []);
  const older = loaded[cursors[cursors.length - 1] ?? "first"]?.older ?? null;
  return (
    <article>
      <h1 data-testid="dataset-name">{dataset.name}</h1>
      {dataset.description && <p>{dataset.description}</p>}
      <table className="events" data-testid="versions">
        <thead><tr><th>Version</th><th>Datums</th><th>Per split</th><th>Manifest SHA-256</th><th>Content</th><th>Parent</th><th>Annotation sets</th><th>Created</th><th>Integrity</th></tr></thead>
        {cursors.map((before) => (
          <VersionsPage key={before ?? "first"} datasetId={id} before={before} onLoaded={onLoaded} />
        ))}
      </table>
      {older && <Sentinel next={older} onMore={more} />}
      {versions.length > 1 && <Diff versions={versions} />}
    </article>
  );
}

function VersionsPage({ datasetId, before, onLoaded }: {
  datasetId: string; before: string | null; onLoaded: (key: string, page: LoadedPage) => void;
}) {
  // From the network each time: the pages before it are asked from its startCursor, and a cached
  // newest page refreshed after them would leave the versions between out.
  const [{ data, error }] = useQuery({
    query: DatasetVersionsDocument, variables: { id: datasetId, last: PAGE_SIZE, before, withCount: before === null },
    requestPolicy: "network-only",
  });
  const connection = data?.dataset?.versions;
  useEffect(() => {
    if (!connection) return;
    const rows = connection.edges.map((e) => e.node).reverse();  // the page comes oldest first
    onLoaded(before ?? "first", { rows, older: connection.pageInfo.hasPreviousPage ? connection.pageInfo.startCursor : null });
  }, [connection, before, onLoaded]);
  if (error) return <tbody><tr><td colSpan={9}><p role="alert" className="error">{errorText(error)}</p></td></tr></tbody>;
  if (!connection) return null;
  return (
    <tbody>
      {before === null && connection.totalCount === 0 && <tr><td colSpan={9} className="muted">No version yet.</td></tr>}
      {[...connection.edges].reverse().map(({ node: v }) => (
        <tr key={v.id} data-testid="version-row" data-version={v.version}>
          <td><strong>{v.version}</strong>{v.description && <div className="muted">{v.description}</div>}</td>
          <td>{v.datumCount}</td>
          <td>{v.splitCounts.filter((s) => s.count).map((s) => `${s.split} ${s.count}`).join(", ")}</td>
          <td><code title={v.manifestSha256}>{v.manifestSha256.slice(0, 12)}…</code></td>
          <td><ContentDownload version={v} /></td>
          <td>{v.parent?.version ?? ""}</td>
          {/* The version's own count of each set's records (a set's recordCount is what it holds now). */}
          <td>{v.annotationCounts.map((c) => `${c.set.name} (${c.set.purpose}, ${c.records})`).join(", ")}</td>
          <td>{when(v.createdAt)}{v.createdBy && ` by ${v.createdBy}`}</td>
          <td><Verify versionId={v.id} /></td>
        </tr>
      ))}
    </tbody>
  );
}

/** Check a version against its manifest hash and its assets' digests, when asked (it reads the
 *  whole version): what `graphlake datasets verify` says, without re-reading the stored bytes. */
function Verify({ versionId }: { versionId: string }) {
  const client = useClient();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<VersionVerificationQuery["datasetVersion"] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const check = async () => {
    setBusy(true);
    setProblem(null);
    const answer = await client.query(VersionVerificationDocument, { id: versionId }, { requestPolicy: "network-only" }).toPromise();
    setBusy(false);
    if (answer.error) setProblem(errorText(answer.error));
    setResult(answer.data?.datasetVersion ?? null);
  };
  const checked = result?.verification;
  return (
    <div data-testid="verify">
      <button type="button" className="link" onClick={check} disabled={busy}>{busy ? "Verifying…" : "Verify"}</button>
      {checked?.ok && <span className="muted"> ✓ intact ({checked.datums} datums, {checked.records} records)</span>}
      {checked && !checked.ok && (
        <details className="error" open>
          <summary>✗ {checked.problems.length} problem(s)</summary>
          <ul>{checked.problems.map((p, i) => <li key={i}>{p}</li>)}</ul>
        </details>
      )}
      {problem && <p role="alert" className="error">{problem}</p>}
    </div>
  );
}

/** A version's content file (one JSON line per datum, with its annotations), downloaded through a
 *  signed URL asked for at the click: one in the list would expire while the page stays open. */
function ContentDownload({ version }: { version: VersionRowFragment }) {
  const client = useClient();
  const { download, busy, problem } = useSignedDownload(async () => {
    const result = await client.query(VersionContentUrlDocument, { id: version.id }, { requestPolicy: "network-only" }).toPromise();
    return { url: result.data?.datasetVersion?.content?.downloadUrl, error: result.error };  // saved as <dataset>-<version>.jsonl
  }, "its file is not available on this lake");
  const content = version.content;
  if (!content) {
    return <span className="muted" title="Not written yet (built before versions had content files, or its write failed): the server's hourly maintenance writes it">none</span>;
  }
  return (
    <>
      <button type="button" onClick={download} disabled={busy} title={`SHA-256 ${content.sha256}`} data-testid="content-download">
        JSONL {bytes(content.sizeBytes)}
      </button>
      {problem && <div role="alert" className="error">{problem}</div>}
    </>
  );
}

/** Two versions compared: pick them (newest against the one before, to start). */
function Diff({ versions }: { versions: { id: string; version: string }[] }) {
  const [version, setVersion] = useState(versions[0].id);
  const [against, setAgainst] = useState(versions[1].id);
  const [{ data, error, fetching }] = useQuery({ query: VersionDiffDocument, variables: { version, against }, pause: version === against });
  const pick = (value: string, set: (id: string) => void, label: string) => (
    <select aria-label={label} value={value} onChange={(e) => set(e.target.value)}>
      {versions.map((v) => <option key={v.id} value={v.id}>{v.version}</option>)}
    </select>
  );
  const diff = data?.datasetVersion?.diff;
  return (
    <section data-testid="diff">
      <h2>Compare {pick(version, setVersion, "Version")} against {pick(against, setAgainst, "Against")}</h2>
      {version === against && <p className="muted">Pick two different versions.</p>}
      {error && <p role="alert" className="error">{errorText(error)}</p>}
      {fetching && !diff && <p className="muted">Comparing…</p>}
      {diff && version !== against && (
        <div className="relations">
          <DiffList title="Added" count={diff.addedCount} datums={diff.added.edges.map((e) => e.node)} />
          <DiffList title="Removed" count={diff.removedCount} datums={diff.removed.edges.map((e) => e.node)} />
          <DiffList title="Changed" count={diff.changedCount} datums={diff.changed.edges.map((e) => e.node)} />
        </div>
      )}
    </section>
  );
}

function DiffList({ title, count, datums }: { title: string; count: number; datums: DiffDatumFragment[] }) {
  return (
    <div data-testid={`diff-${title.toLowerCase()}`}>
      <h3>{title} <span className="muted">({count})</span></h3>
      <ul>
        {datums.map((d) => (
          <li key={d.id}>
            <span className="badge split">{d.split}</span>{" "}
            {d.roles.map((r) => <Link key={r.role} href={assetHref(r.asset.id)}>{r.role}: {r.asset.name} </Link>)}
          </li>
        ))}
        {count > datums.length && <li className="muted">and {count - datums.length} more</li>}
      </ul>
    </div>
  );
}
