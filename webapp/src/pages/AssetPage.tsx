// One asset: what it is, its value or text, where it is filed, its lineage, a signed download link
// and, for an image with annotations, the records drawn over it.
import { useEffect, useRef, useState } from "react";
import { type AnyVariables, type Client, type CombinedError, type DocumentInput, useClient, useQuery } from "urql";
import { Link } from "wouter";

import { errorText, safeUrl } from "../client";
import { AnnotationOverlay } from "../components/AnnotationOverlay";
import { assetHref } from "../components/AssetRow";
import { JsonTree } from "../components/JsonTree";
import { useSignedDownload } from "../components/SignedDownload";
import {
  AssetDownloadUrlDocument,
  AssetAnnotationsMoreDocument, AssetCollectionsMoreDocument, AssetDatumsMoreDocument, AssetDerivedMoreDocument,
  AssetDetailDocument, type AnnotationFilter, type AnnotationShapeFragment,
} from "../generated/graphql";
import { bytes, counted, when } from "../format";
import { useListMemory, useScrollMemory } from "../listMemory";
import { lakePath } from "../root";
import { canWrite, useSession } from "../session";


export function AssetPage({ id }: { id: string }) {
  const [{ data, error, fetching }] = useQuery({ query: AssetDetailDocument, variables: { id } });
  const client = useClient();
  const { role } = useSession();
  useScrollMemory();  // Back from a collection or asset it links to returns to where it was
  if (error) return <p role="alert" className="error">{errorText(error)}</p>;
  if (!data) return fetching ? <p className="muted">Loading…</p> : null;
  const asset = data.asset;
  if (!asset) return <p className="error">No asset {id} (deleted, or never existed).</p>;
  const records = asset.annotations.edges.map((e) => e.node);
  const moreRecords = (filter: AnnotationFilter | null) =>
    pager(client, AssetAnnotationsMoreDocument, (after) => ({ id, after, filter }), (d) => d?.asset?.annotations);
  const download = safeUrl(asset.downloadUrl);
  const isImage = asset.mediaType?.startsWith("image/") && download;
  // A browser draws these itself; any other image (TIFF, say) is shown from its server-made thumbnail,
  // without the annotations, whose coordinates are the original's pixels.
  const drawable = BROWSER_IMAGES.has((asset.mediaType ?? "").split(";")[0].trim().toLowerCase());
  const shownImage = drawable ? download : safeUrl(asset.displayUrl);
  const owner = Object.entries(asset.owner).filter(([k, v]) => k !== "__typename" && v);
  return (
    <article className="asset">
      <h1 data-testid="asset-name">{asset.name}</h1>
      <p>
        <span className={`badge status-${asset.status}`} data-testid="asset-status">{asset.status}</span>{" "}
        <span className="badge">{asset.kind}</span>{" "}
        {asset.labels.map((l) => <span key={l} className="label">{l}</span>)}
        {download && <> <AssetDownload id={asset.id} /></>}
        {(asset.kind === "VALUE" || asset.kind === "TEXT") && <> <ContentDownload id={asset.id} name={asset.name} kind={asset.kind} /></>}
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

      {isImage && shownImage && (
        <section>
          <h2>Image{records.length > 0 && ` and ${asset.annotations.totalCount} annotations`}</h2>
          {!drawable && <p className="muted">Shown from its 512-pixel thumbnail: a browser cannot show {asset.mediaType}.</p>}
          <AnnotatedImage key={asset.annotations.pageInfo.endCursor ?? "annotations"} src={shownImage}
            records={asset.annotations} superseded={asset.superseded} draw={drawable} canVerify={canWrite(role)}
            more={moreRecords} remember={`asset ${id}`} />
        </section>
      )}
      {isImage && !shownImage && <p className="muted">A browser cannot show {asset.mediaType}: download it.</p>}
      {asset.kind === "VALUE" && <section><h2>Value</h2><div className="json" data-testid="asset-value"><JsonTree value={asset.value} /></div></section>}
      {asset.kind === "TEXT" && <section><h2>Text</h2><pre className="text" data-testid="asset-text">{asset.text}</pre></section>}
      {Object.keys(asset.metadata as object ?? {}).length > 0 && (
        <section><h2>Metadata</h2><div className="json"><JsonTree value={asset.metadata} /></div></section>
      )}

      <section className="relations">
        <Related title="Collections" total={asset.collections.totalCount} first={asset.collections}
          key={asset.collections.pageInfo.endCursor ?? "collections"} remember={`asset ${id} collections`}
          more={pager(client, AssetCollectionsMoreDocument, (after) => ({ id, after }), (d) => d?.asset?.collections)}
          render={(node) => (
            <Link href={`/collections/${encodeURIComponent(node.id)}`}>{node.name} <span className="muted">({counted(node.itemCount, "item")})</span></Link>
          )} />
        <Related title="Datums" total={asset.datums.totalCount} first={asset.datums}
          key={asset.datums.pageInfo.endCursor ?? "datums"} remember={`asset ${id} datums`}
          more={pager(client, AssetDatumsMoreDocument, (after) => ({ id, after }), (d) => d?.asset?.datums)}
          render={(node) => (
            <span>{node.split}: {node.roles.map((r) => <Link key={r.role} href={assetHref(r.asset.id)}>{r.role} </Link>)}</span>
          )} />
        <Related title="Derived from" total={asset.derivedFrom.length} first={{ edges: asset.derivedFrom.map((node) => ({ node })) }}
          remember={`asset ${id} derived from`}
          render={(a) => <Link href={assetHref(a.id)}>{a.name}</Link>} />
        <Related title="Derived assets" total={asset.derivedAssets.totalCount} first={asset.derivedAssets}
          key={asset.derivedAssets.pageInfo.endCursor ?? "derivedAssets"} remember={`asset ${id} derived assets`}
          more={pager(client, AssetDerivedMoreDocument, (after) => ({ id, after }), (d) => d?.asset?.derivedAssets)}
          render={(node) => <Link href={assetHref(node.id)}>{node.name}</Link>} />
        {!isImage && <Related title="Annotations" total={asset.annotations.totalCount} first={asset.annotations}
          key={asset.annotations.pageInfo.endCursor ?? "annotations"} remember={`asset ${id} annotations`} more={moreRecords(null)}
          render={(r) => <span>{r.kind} {r.label} {r.score != null && r.score.toFixed(2)} {r.verified && "✓"}</span>} />}
      </section>
    </article>
  );
}

/** An answer's data, or its error thrown (Related shows it). */
// What a browser's <img> shows: the rest (image/tiff above all) is shown from its thumbnail.
const BROWSER_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif",
  "image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon"]);

/** The asset's file, through a URL signed at the click (components/SignedDownload.tsx). */
function AssetDownload({ id }: { id: string }) {
  const client = useClient();
  const { download, busy, problem } = useSignedDownload(async () => {
    const result = await client.query(AssetDownloadUrlDocument, { id }, { requestPolicy: "network-only" }).toPromise();
    return { url: result.data?.asset?.downloadUrl, error: result.error };
  }, "its file is not available (deleted meanwhile?)");
  return (
    <>
      <button type="button" className="button" onClick={download} disabled={busy} data-testid="asset-download">Download</button>
      {problem && <span role="alert" className="error"> {problem}</span>}
    </>
  );
}

/** A value's JSON or a text, as stored, from the content route (with the token: no signed URL
 *  serves them), saved under the asset's name (a value's with .json when it has no extension). */
function ContentDownload({ id, name, kind }: { id: string; name: string; kind: string }) {
  const { token } = useSession();
  const [problem, setProblem] = useState<string | null>(null);
  const save = async () => {
    setProblem(null);
    const response = await fetch(lakePath(`/assets/${encodeURIComponent(id)}/content`), { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) {
      setProblem(`could not download it (HTTP ${response.status})`);
      return;
    }
    // Only what Graphlake's content route answered, which names the asset: anything else that answers
    // 200 there (a dev server's or a proxy's page for unknown paths, index.html) is not the file.
    if (response.headers.get("X-Graphlake-Id") !== id) {
      setProblem("could not download it: Graphlake's content route did not answer (a proxy or dev server in between?)");
      return;
    }
    const base = name.split("/").pop() || "download";
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = kind === "VALUE" && !/\.[^.]+$/.test(base) ? `${base}.json` : base;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  };
  return (
    <>
      <button type="button" className="button" onClick={save} data-testid="asset-download">Download</button>
      {problem && <span role="alert" className="error"> {problem}</span>}
    </>
  );
}

function answered<D>(result: { data?: D; error?: CombinedError }): D | undefined {
  if (result.error) throw result.error;
  return result.data;
}

type Page<T> = { edges: { node: T }[]; pageInfo?: { hasNextPage: boolean; endCursor: string | null } };

type Records = Page<AnnotationShapeFragment> & { totalCount: number };

/** Where a list's pages after its first come from: asked of the server (Show more), or as urql's cache
 *  holds them, at once (Back: the page is drawn as tall as it was before it scrolls back down). */
type Pager<T> = {
  more: (after: string) => Promise<Page<T> | null | undefined>;
  cached: (after: string) => Page<T> | null | undefined;
};

function pager<D, V extends AnyVariables, T>(client: Client, query: DocumentInput<D, V>, variables: (after: string) => V,
  pick: (data: D | undefined) => Page<T> | null | undefined): Pager<T> {
  return {
    more: async (after) => pick(answered(await client.query(query, variables(after)).toPromise())),
    cached: (after) => {
      const kept = client.readQuery(query, variables(after), { requestPolicy: "cache-only" });
      return kept && !kept.error ? pick(kept.data) : undefined;
    },
  };
}

/** An image with its records drawn over it: the first 200 current and 200 superseded came with the
 *  asset; "Show more" brings the next 200 of either, drawn with the rest. */
function AnnotatedImage({ src, records, superseded, draw, canVerify, more, remember }: {
  src: string; records: Records; superseded: Records; draw: boolean; canVerify: boolean;
  more: (filter: AnnotationFilter | null) => Pager<AnnotationShapeFragment>; remember: string;
}) {
  const current = usePages(records, `${remember} annotations`, more(null));
  const replaced = usePages(superseded, `${remember} superseded`, more({ superseded: true }));
  return (
    <>
      <AnnotationOverlay src={src} records={current.shown} superseded={replaced.shown} draw={draw} canVerify={canVerify} />
      <ShowMore pages={current} total={records.totalCount} what="annotations" />
      <ShowMore pages={replaced} total={superseded.totalCount} what="superseded records" />
    </>
  );
}

function ShowMore<T>({ pages, total, what }: { pages: ReturnType<typeof usePages<T>>; total: number; what: string }) {
  if (!pages.hasMore && !pages.problem) return null;
  return (
    <p>
      {pages.hasMore && (  // aria-disabled, not disabled: a disabled button loses the keyboard's focus
        <button type="button" className="link" onClick={pages.showMore} aria-disabled={pages.busy}>
          Show more {what} ({total - pages.shown.length} more)
        </button>
      )}
      {pages.problem && <span role="alert" className="error"> {pages.problem}</span>}
    </p>
  );
}

/** A list's first page and the pages "Show more" brings after it (`more`), with the keyboard's focus
 *  moved to the first item a page brought (`list`: the element holding the items). The pages shown are
 *  remembered in the history entry under `remember` (listMemory.ts): Back to the asset shows them again. */
function usePages<T>(first: Page<T>, remember: string, more?: Pager<T>) {
  // The first page's end cursor in the key: a first page that changed meanwhile starts the list afresh.
  const [cursors, setCursors] = useListMemory(`${remember} ${first.pageInfo?.endCursor ?? ""}`);
  const [pages, setPages] = useState<Page<T>[]>(() => {  // those after the first: cursors[1:], once loaded
    const kept: Page<T>[] = [];
    for (const after of cursors.slice(1) as string[]) {  // null is the first page's
      const page = more?.cached(after);
      if (!page) break;
      kept.push(page);
    }
    return kept;
  });
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(pages.length < cursors.length - 1);
  useEffect(() => {
    // Those the cache no longer holds (a change since dropped them), asked again.
    const have = pages.length;
    const missing = cursors.slice(1 + have) as string[];
    if (!missing.length) return;
    let current = true;
    void Promise.all(missing.map((after) => more?.more(after).catch(() => null) ?? null)).then((found) => {
      if (!current) return;
      // Up to the first that failed (an asset changed or deleted meanwhile): the rest come with Show more.
      const failed = found.findIndex((page) => !page);
      const kept = (failed < 0 ? found : found.slice(0, failed)) as Page<T>[];
      setPages((old) => [...old, ...kept]);
      setCursors(cursors.slice(0, 1 + have + kept.length));
      setBusy(false);
    });
    return () => { current = false; };
  }, []);  // once, as the list is shown: later cursors come with their pages
  // Keyboard focus goes to the first item a Show more brought (the button may be gone by then).
  const list = useRef<HTMLUListElement>(null);
  const [focusAt, setFocusAt] = useState<number | null>(null);
  useEffect(() => {
    if (focusAt === null) return;
    (list.current?.children[focusAt] as HTMLElement | undefined)?.focus();
    setFocusAt(null);
  }, [focusAt]);
  const shown = [first, ...pages].flatMap((page) => page.edges.map((e) => e.node));
  const last = pages.at(-1) ?? first;
  const next = last.pageInfo?.hasNextPage ? last.pageInfo.endCursor : null;
  const showMore = async () => {
    if (!more || !next || busy) return;
    const after = next;
    setBusy(true);
    let page: Page<T> | null | undefined;
    try {
      page = await more.more(after);
    } catch (error) {
      setProblem(`could not load more: ${errorText(error as CombinedError)}`);
      return;
    } finally {
      setBusy(false);
    }
    if (!page) { setProblem("could not load more: this asset is gone"); return; }
    setProblem(null);
    setPages((loaded) => [...loaded, page]);
    setCursors((old) => [...old, after]);
    if (page.edges.length) setFocusAt(shown.length);
  };
  return { shown, hasMore: Boolean(more && next), showMore, busy, problem, list };
}

/** One of the asset's lists: its first page, and "Show more" for the next pages of those that page.
 *  Keyed by its first page's end cursor: a refetched first page that changed starts it afresh. */
function Related<T extends { id: string }>({ title, total, first, render, more, remember }: {
  title: string; total: number; first: Page<T>; render: (node: T) => React.ReactNode;
  more?: Pager<T>; remember: string;
}) {
  const { shown, hasMore, showMore, busy, problem, list } = usePages(first, remember, more);
  if (total === 0) return null;
  return (
    <div data-testid={`related-${title.toLowerCase().replace(/ /g, "-")}`}>
      <h3>{title} <span className="muted">({total})</span></h3>
      <ul ref={list}>{shown.map((node) => <li key={node.id} tabIndex={-1}>{render(node)}</li>)}</ul>
      {hasMore && (  // aria-disabled, not disabled: a disabled button loses the keyboard's focus
        <button type="button" className="link" onClick={showMore} aria-disabled={busy}>Show more ({total - shown.length} more)</button>
      )}
      {problem && <p role="alert" className="error">{problem}</p>}
    </div>
  );
}
