// One asset: what it is, its value or text, where it is filed, its lineage, a signed download link
// and, for an image with annotations, the records drawn over it.
import { useQuery } from "urql";
import { Link } from "wouter";

import { errorText, safeUrl } from "../client";
import { AnnotationOverlay } from "../components/AnnotationOverlay";
import { assetHref } from "../components/AssetRow";
import { JsonTree } from "../components/JsonTree";
import { AssetDetailDocument } from "../generated/graphql";
import { bytes, when } from "../format";
import { canWrite, useSession } from "../session";


export function AssetPage({ id }: { id: string }) {
  const [{ data, error, fetching }] = useQuery({ query: AssetDetailDocument, variables: { id } });
  const { role } = useSession();
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return fetching ? <p className="muted">Loading…</p> : null;
  const asset = data.asset;
  if (!asset) return <p className="error">No asset {id} (deleted, or never existed).</p>;
  const records = asset.annotations.edges.map((e) => e.node);
  const download = safeUrl(asset.downloadUrl);
  const isImage = asset.mediaType?.startsWith("image/") && download;
  const owner = Object.entries(asset.owner).filter(([k, v]) => k !== "__typename" && v);
  return (
    <article className="asset">
      <h1 data-testid="asset-name">{asset.name}</h1>
      <p>
        <span className={`badge status-${asset.status}`} data-testid="asset-status">{asset.status}</span>{" "}
        <span className="badge">{asset.kind}</span>{" "}
        {asset.labels.map((l) => <span key={l} className="label">{l}</span>)}
        {download && <> <a className="button" href={download} download={asset.name}>Download</a></>}
      </p>
      {asset.description && <p>{asset.description}</p>}
      <dl className="facts">
        <dt>ID</dt><dd><code>{asset.id}</code></dd>
        {asset.mediaType && <><dt>Media type</dt><dd>{asset.mediaType}</dd></>}
        {asset.sizeBytes != null && <><dt>Size</dt><dd>{bytes(asset.sizeBytes)} ({asset.sizeBytes} bytes)</dd></>}
        {asset.sha256 && <><dt>SHA-256</dt><dd><code>{asset.sha256}</code></dd></>}
        {asset.digestError && <><dt>Digest error</dt><dd className="error">{asset.digestError}</dd></>}
        {asset.storage && <><dt>Stored</dt><dd><code>{asset.storage.uri}</code></dd></>}
        <dt>Created</dt><dd>{when(asset.createdAt)}{asset.createdBy && ` by ${asset.createdBy}`}</dd>
        <dt>Updated</dt><dd>{when(asset.updatedAt)}</dd>
        {asset.dataTimestamp && <><dt>Data time</dt><dd>{when(asset.dataTimestamp)}</dd></>}
        {asset.aliases.length > 0 && <><dt>Aliases</dt><dd>{asset.aliases.join(", ")}</dd></>}
        {owner.length > 0 && <><dt>Owner</dt><dd>{owner.map(([k, v]) => `${k}: ${v}`).join(", ")}</dd></>}
      </dl>

      {isImage && (
        <section>
          <h2>Image{records.length > 0 && ` and ${asset.annotations.totalCount} annotations`}</h2>
          <AnnotationOverlay src={download} records={records} canVerify={canWrite(role)} />
        </section>
      )}
      {asset.kind === "VALUE" && <section><h2>Value</h2><div className="json" data-testid="asset-value"><JsonTree value={asset.value} /></div></section>}
      {asset.kind === "TEXT" && <section><h2>Text</h2><pre className="text" data-testid="asset-text">{asset.text}</pre></section>}
      {Object.keys(asset.metadata as object ?? {}).length > 0 && (
        <section><h2>Metadata</h2><div className="json"><JsonTree value={asset.metadata} /></div></section>
      )}

      <section className="relations">
        <Related title="Collections" total={asset.collections.totalCount}
          items={asset.collections.edges.map(({ node }) => (
            <Link key={node.id} href={`/collections/${encodeURIComponent(node.id)}`}>{node.name} <span className="muted">({node.itemCount} items)</span></Link>
          ))} />
        <Related title="Datums" total={asset.datums.totalCount}
          items={asset.datums.edges.map(({ node }) => (
            <span key={node.id}>{node.split}: {node.roles.map((r) => <Link key={r.role} href={assetHref(r.asset.id)}>{r.role} </Link>)}</span>
          ))} />
        <Related title="Derived from" total={asset.derivedFrom.length}
          items={asset.derivedFrom.map((a) => <Link key={a.id} href={assetHref(a.id)}>{a.name}</Link>)} />
        <Related title="Derived assets" total={asset.derivedAssets.totalCount}
          items={asset.derivedAssets.edges.map(({ node }) => <Link key={node.id} href={assetHref(node.id)}>{node.name}</Link>)} />
        {!isImage && <Related title="Annotations" total={asset.annotations.totalCount}
          items={records.map((r) => <span key={r.id}>{r.kind} {r.label} {r.score != null && r.score.toFixed(2)} {r.verified && "✓"}</span>)} />}
      </section>
    </article>
  );
}

function Related({ title, total, items }: { title: string; total: number; items: React.ReactNode[] }) {
  if (total === 0) return null;
  return (
    <div>
      <h3>{title} <span className="muted">({total})</span></h3>
      <ul>{items.map((item, i) => <li key={i}>{item}</li>)}</ul>
    </div>
  );
}
