// A mask's outline, traced from its pixels into an SVG path, so it is stroked like every other shape:
// in its label's colour, the same width on screen, dashed or not by who made it. An SVG filter (the
// mask dilated, minus itself) would cost no JavaScript but draws a ring only solid, and in the
// image's pixels (thicker on a bigger image): it could not show who made the record. Tracing costs
// one pass over the mask's pixels, once per mask asset (its bytes never change), read by the download
// that also draws it (useMask). Reading them needs the mask's URL readable by the page: a local mount's
// is the app's own origin; an S3 bucket must allow the app's origin to GET (CORS), else the mask is
// drawn filled, from its URL as an <image> loads any, without its outline.
import { useEffect, useState } from "react";

/** A traced outline: its path in the mask's own pixels, and the mask's size (to scale it to the image). */
export type Outline = { d: string; w: number; h: number };

/**
 * The boundary of a mask's pixels that show (luminance times alpha over half: what the luminance
 * mask drawing it shows most of) as closed loops along pixel edges, a segment per straight run.
 */
export function traceOutline(rgba: Uint8ClampedArray, w: number, h: number): Outline {
  const inside = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) {
    const luminance = 0.2126 * rgba[4 * i] + 0.7152 * rgba[4 * i + 1] + 0.0722 * rgba[4 * i + 2];
    inside[i] = luminance * rgba[4 * i + 3] > 127 * 255 ? 1 : 0;
  }
  const shows = (x: number, y: number) => x >= 0 && y >= 0 && x < w && y < h && inside[y * w + x] === 1;
  // Each side between a pixel that shows and one that does not, as an edge between two corners
  // (corner = y * (w + 1) + x) with the pixel that shows on its right: every corner is then left as
  // often as it is reached, so following edges from any corner comes back to it, a closed loop.
  const W = w + 1;
  const out = new Map<number, number[]>();
  const edge = (ax: number, ay: number, bx: number, by: number) => {
    const from = ay * W + ax;
    const list = out.get(from);
    if (list) list.push(by * W + bx); else out.set(from, [by * W + bx]);
  };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!inside[y * w + x]) continue;
      if (!shows(x, y - 1)) edge(x, y, x + 1, y);
      if (!shows(x + 1, y)) edge(x + 1, y, x + 1, y + 1);
      if (!shows(x, y + 1)) edge(x + 1, y + 1, x, y + 1);
      if (!shows(x - 1, y)) edge(x, y + 1, x, y);
    }
  }
  const parts: string[] = [];
  const corner = (c: number) => `${c % W} ${Math.floor(c / W)}`;
  for (const [start, leaving] of out) {
    while (leaving.length) {
      let to = leaving.pop()!;
      let step = to - start;  // ±1 or ±W: the direction, so a straight run is one segment
      parts.push(`M${corner(start)}`);
      while (to !== start) {
        const after = out.get(to)!.pop()!;
        if (after - to !== step) parts.push(`L${corner(to)}`);
        step = after - to;
        to = after;
      }
      parts.push("Z");
    }
  }
  return { d: parts.join(""), w, h };
}

/** A mask to draw: `href` for its <image> (its bytes, read once, as an object URL; else a URL of its
 *  own), and its outline once traced (null if the page could not read its bytes). */
export type Mask = { href: string; outline: Outline | null };

/** A mask read: what its <image> draws (`objectUrl` if the page holds its bytes), and its outline. */
type Read = { href: string; objectUrl: string | null; outline: Outline | null };
type Entry = { read: Promise<Read | null>; users: number; timer: number };
const masks = new Map<string, Entry>();  // by mask asset id: its bytes never change
const KEEP_MS = 60_000;  // after its last drawing goes: a set switched back on, or Back, draws it again at once

async function download(url: string): Promise<Read | null> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch {
    // Refused: an S3 bucket that does not allow the app's origin (CORS) answers, but not to the page
    // (fetch tells that from a network failure no better). The browser drops such an answer at its
    // headers, before its body: this one attempt cost no download. The <image> then draws the mask
    // from this URL, its one download, without an outline; kept, with this URL rather than one
    // signed later, so the mask is neither asked again each time the page is (Back, a Verify) nor
    // downloaded again by its <image> (the same URL: the browser's copy).
    return { href: url, objectUrl: null, outline: null };
  }
  if (!response.ok) return null;  // a failed or expired URL
  const blob = await response.blob();
  const bitmap = await createImageBitmap(blob);
  const { width, height } = bitmap;
  const context = new OffscreenCanvas(width, height).getContext("2d");
  context?.drawImage(bitmap, 0, 0);
  bitmap.close();
  const outline = context ? traceOutline(context.getImageData(0, 0, width, height).data, width, height) : null;
  const objectUrl = URL.createObjectURL(blob);
  return { href: objectUrl, objectUrl, outline };
}

/**
 * The mask asset `assetId` (at `url`), downloaded once for both its drawing and its outline: the
 * <image> draws the bytes the tracing read (it had downloaded them a second time, and again whenever
 * the page's data came back with the URL signed anew). Null until read, and at once when `assetId`
 * changes (another mask is not shown meanwhile, nor a late answer for this one). A mask the page may
 * not read is drawn by the <image> from its URL, without an outline (download); a URL that fails is
 * drawn as it is, and tried again the next time the mask is drawn. Kept while drawn (and a minute
 * after), then its object URL is revoked.
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
    void held.read.then((found) => {
      if (current) setShown({ assetId, mask: found ? { href: found.href, outline: found.outline } : { href: url, outline: null } });
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
