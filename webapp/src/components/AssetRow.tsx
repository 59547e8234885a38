import { Link } from "wouter";

import type { AssetRowFragment } from "../generated/graphql";
import { safeUrl } from "../client";
import { bytes, when } from "../format";

export const assetHref = (id: string) => `/assets/${encodeURIComponent(id)}`;

/** One asset in a list (a row) or a grid (a card): the list's CSS decides which. A card shows an
 * image's thumbnail (made by the server), loaded lazily: only cards near the viewport fetch theirs. */
export function AssetRow({ asset, path, thumbnail = false }: {
  asset: AssetRowFragment; path?: string | null; thumbnail?: boolean;
}) {
  const src = thumbnail ? safeUrl(asset.thumbnailUrl) : null;
  return (
    <Link href={assetHref(asset.id)} className="asset-row" data-testid="asset-row">
      {thumbnail && (src
        ? <img className="thumb" src={src} alt="" loading="lazy" decoding="async" data-testid="thumbnail" />
        : <span className="thumb no-thumb">{asset.kind}</span>)}
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
