// A mask's outline, traced from its pixels into an SVG path, so it is stroked like every other shape:
// in its label's colour, the same width on screen, dashed or not by who made it. An SVG filter (the
// mask dilated, minus itself) would cost no JavaScript but draws a ring only solid, and in the
// image's pixels (thicker on a bigger image): it could not show who made the record. Tracing costs
// one pass over the mask's pixels, once per mask asset (its bytes never change), read by the download
// that also draws it (useMask), in a worker (maskOutlineWorker.ts): the page stays live meanwhile,
// the mask drawn, its outline added once traced. Reading them needs the mask's URL readable by the
// page: a local mount's is the app's own origin; an S3 bucket must allow the app's origin to GET
// (CORS), else the mask is drawn filled, from its URL as an <image> loads any, without its outline.
import { useEffect, useState } from "react";

/** A traced outline: its path in the mask's own pixels, and the mask's size (to scale it to the image). */
export type Outline = { d: string; w: number; h: number };

/** A mask to draw: `href` for its <image> (its bytes, read once, as an object URL; else a URL of its
 *  own), its outline once traced (null meanwhile, and for good if the page cannot read its bytes), and
 *  what its <image> calls if it cannot load `href` (`failed`). */
export type Mask = { href: string; outline: Outline | null; failed: () => void };

/** A mask read: what its <image> draws (`objectUrl` if the page holds its bytes), and its outline to come. */
type Read = { href: string; objectUrl: string | null; outline: Promise<Outline | null> };
type Entry = { read: Promise<Read | null>; users: number; timer: number };
const masks = new Map<string, Entry>();  // by mask asset id: its bytes never change
const KEEP_MS = 60_000;  // after its last drawing goes: a set switched back on, or Back, draws it again at once

/** The outline of the mask image `blob`, traced by a worker of its own (null if it cannot be). */
function traced(blob: Blob): Promise<Outline | null> {
  return new Promise((resolve) => {
    const worker = new Worker(new URL("./maskOutlineWorker.ts", import.meta.url), { type: "module" });
    const done = (outline: Outline | null) => { worker.terminate(); resolve(outline); };
    worker.onmessage = (event: MessageEvent<Outline | null>) => done(event.data);
    worker.onerror = () => done(null);
    worker.postMessage(blob);
  });
}

async function download(url: string): Promise<Read | null> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch {
    // Refused: an S3 bucket that does not allow the app's origin (CORS) answers, but not to the page
    // (fetch tells that from a network failure no better). The browser refuses such an answer at its
    // headers, so the attempt costs little more than a request. The <image> then draws the mask
    // from this URL, its one download, without an outline; kept, with this URL rather than one
    // signed later, so the mask is neither asked again each time the page is (Back, a Verify) nor
    // downloaded again by its <image> (the same URL: the browser's copy).
    // A network failure (the server restarting, the connection lost) looks the same to fetch: the
    // <image> then fails too, and says so (useMask's `failed`), so it is not kept as a refusal.
    return { href: url, objectUrl: null, outline: Promise.resolve(null) };
  }
  if (!response.ok) return null;  // a failed or expired URL
  const blob = await response.blob();
  const objectUrl = URL.createObjectURL(blob);
  return { href: objectUrl, objectUrl, outline: traced(blob) };
}

/**
 * The mask asset `assetId` (at `url`), downloaded once for both its drawing and its outline: the
 * <image> draws the bytes the tracing read (it had downloaded them a second time, and again whenever
 * the page's data came back with the URL signed anew). Null until read, and at once when `assetId`
 * changes (another mask is not shown meanwhile, nor a late answer for this one). Drawn once read,
 * outlined once traced. A mask the page may not read is drawn by the <image> from its URL, without
 * an outline (download); a URL that fails (for the <image> too, if the page may not read it) is drawn
 * as it is, and tried again the next time the mask is drawn. Kept while drawn (and a minute after),
 * then its object URL is revoked.
 */
export function useMask(assetId: string, url: string | null): Mask | null {
  // The mask shown, with whose it is: the state of a drawing given another mask is not reset by the
  // effect until it runs, after a frame drawn with the old mask (or never, for another without a URL).
  const [shown, setShown] = useState<{ assetId: string; mask: Mask } | null>(null);
  useEffect(() => {
    if (!url) return;
    let entry = masks.get(assetId);
    if (!entry) {
      const made: Entry = { read: download(url).catch(() => null), users: 0, timer: 0 };
      // A failure is not kept: the next drawing of the mask tries again.
      void made.read.then((found) => { if (!found && masks.get(assetId) === made) masks.delete(assetId); });
      masks.set(assetId, (entry = made));
    }
    const held = entry;
    held.users += 1;
    clearTimeout(held.timer);
    let current = true;
    const show = (mask: Omit<Mask, "failed">) => { if (current) setShown({ assetId, mask: { ...mask, failed } }); };
    // Its <image> could not load the URL: taken for a refusal (CORS), the fetch had met a network
    // failure. Forgotten then, so the next drawing (Back, a set shown again, the page's data come back)
    // reads it again, rather than drawing it unoutlined for as long as it is kept.
    const failed = () => {
      void held.read.then((found) => {
        if (found && !found.objectUrl && masks.get(assetId) === held) masks.delete(assetId);
      });
    };
    void held.read.then((found) => {
      if (!found) return show({ href: url, outline: null });
      show({ href: found.href, outline: null });  // drawn at once, outlined once traced
      void found.outline.then((outline) => { if (outline) show({ href: found.href, outline }); });
    });
    return () => {
      current = false;
      if (--held.users > 0) return;
      held.timer = window.setTimeout(() => {
        if (held.users > 0) return;
        if (masks.get(assetId) === held) masks.delete(assetId);
        void held.read.then((found) => { if (found?.objectUrl) URL.revokeObjectURL(found.objectUrl); });
      }, KEEP_MS);
    };
  }, [assetId, url]);
  return shown?.assetId === assetId ? shown.mask : null;
}
