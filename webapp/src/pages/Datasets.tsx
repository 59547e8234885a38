// Datasets and their immutable versions: datums per split, the manifest hash (what a version
// holds, so two equal hashes hold the same), its parent and its annotation sets.
import { useQuery } from "urql";
import { Link } from "wouter";

import { errorText } from "../client";
import { DatasetDetailDocument, DatasetListDocument } from "../generated/graphql";
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
  return (
    <article>
      <h1 data-testid="dataset-name">{dataset.name}</h1>
      {dataset.description && <p>{dataset.description}</p>}
      <table className="events" data-testid="versions">
        <thead><tr><th>Version</th><th>Datums</th><th>Per split</th><th>Manifest SHA-256</th><th>Parent</th><th>Annotation sets</th><th>Created</th></tr></thead>
        <tbody>
          {dataset.versions.edges.map(({ node: v }) => (
            <tr key={v.id} data-testid="version-row">
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
    </article>
  );
}
