// Datasets and their immutable versions: datums per split, the manifest hash (what a version
// holds, so two equal hashes hold the same), its parent and its annotation sets.
import { useState } from "react";
import { useQuery } from "urql";
import { Link } from "wouter";

import { errorText } from "../client";
import { assetHref } from "../components/AssetRow";
import { DatasetDetailDocument, DatasetListDocument, VersionDiffDocument, type DiffDatumFragment } from "../generated/graphql";
import { when } from "../format";

export function DatasetList() {
  const [{ data, error }] = useQuery({ query: DatasetListDocument, variables: { first: 100 } });
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return <p className="muted">Loading…</p>;
  return (
    <section className="asset-list" data-testid="datasets">
      <p className="muted">{data.datasets.totalCount} datasets</p>
      {data.datasets.edges.map(({ node }) => (
        <Link key={node.id} href={`/datasets/${encodeURIComponent(node.id)}`} className="collection-row" data-testid="dataset-row">
          <span className="name">{node.name}</span>
          <span className="muted">{node.latest ? `latest ${node.latest.version}: ${node.latest.datumCount} datums` : "no version yet"}</span>
          <span className="muted">{node.description ?? ""}</span>
          <span className="muted">created {when(node.createdAt)}</span>
        </Link>
      ))}
      {data.datasets.pageInfo.hasNextPage && <p className="muted">Showing the first 100.</p>}
    </section>
  );
}

export function DatasetPage({ id }: { id: string }) {
  const [{ data, error }] = useQuery({ query: DatasetDetailDocument, variables: { id } });
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return <p className="muted">Loading…</p>;
  const dataset = data.dataset;
  if (!dataset) return <p className="error">No dataset {id}.</p>;
  // Newest first (the connection lists them oldest first; equal times keep that order, reversed).
  const versions = dataset.versions.edges.map((e, i) => ({ ...e.node, i }))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.i - a.i);
  return (
    <article>
      <h1 data-testid="dataset-name">{dataset.name}</h1>
      {dataset.description && <p>{dataset.description}</p>}
      <table className="events" data-testid="versions">
        <thead><tr><th>Version</th><th>Datums</th><th>Per split</th><th>Manifest SHA-256</th><th>Parent</th><th>Annotation sets</th><th>Created</th></tr></thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.id} data-testid="version-row" data-version={v.version}>
              <td><strong>{v.version}</strong>{v.description && <div className="muted">{v.description}</div>}</td>
              <td>{v.datumCount}</td>
              <td>{v.splitCounts.filter((s) => s.count).map((s) => `${s.split} ${s.count}`).join(", ")}</td>
              <td><code title={v.manifestSha256}>{v.manifestSha256.slice(0, 12)}…</code></td>
              <td>{v.parent?.version ?? ""}</td>
              <td>{v.annotationSets.map((s) => `${s.name} (${s.purpose}, ${s.recordCount})`).join(", ")}</td>
              <td>{when(v.createdAt)}{v.createdBy && ` by ${v.createdBy}`}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {versions.length > 1 && <Diff versions={versions} />}
    </article>
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
