import { Link } from "wouter";

import type { AssetRowFragment } from "../generated/graphql";
import { bytes, when } from "../format";

export const assetHref = (id: string) => `/assets/${encodeURIComponent(id)}`;

/** One asset in a list (a row) or a grid (a card): the list's CSS decides which. */
export function AssetRow({ asset, path }: { asset: AssetRowFragment; path?: string | null }) {
  return (
    <Link href={assetHref(asset.id)} className="asset-row" data-testid="asset-row">
      <span className="name">{path ?? asset.name}</span>
      <span className={`badge status-${asset.status}`}>{asset.status}</span>
      <span className="badge">{asset.kind}</span>
      <span className="muted">{asset.mediaType ?? ""}</span>
      <span className="muted">{bytes(asset.sizeBytes)}</span>
      <span className="labels">{asset.labels.map((l) => <span key={l} className="label">{l}</span>)}</span>
      <span className="muted">{when(asset.createdAt)}</span>
    </Link>
  );
}
