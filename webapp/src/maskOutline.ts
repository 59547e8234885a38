// A mask's outline, traced from its pixels into an SVG path, so it is stroked like every other shape:
// in its label's colour, the same width on screen, dashed or not by who made it. An SVG filter (the
// mask dilated, minus itself) would cost no JavaScript but draws a ring only solid, and in the
// image's pixels (thicker on a bigger image): it could not show who made the record. Tracing costs
// one pass over the mask's pixels, once per mask asset (its bytes never change). Reading them needs
// the mask's URL readable by the page: a local mount's is the app's own origin; an S3 bucket must
// allow the app's origin to GET (CORS), else the mask is drawn filled, without its outline.
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

const traced = new Map<string, Promise<Outline | null>>();  // by mask asset id

async function trace(url: string): Promise<Outline | null> {
  const response = await fetch(url);
  if (!response.ok) return null;
  const bitmap = await createImageBitmap(await response.blob());
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  if (!context) return null;
  context.drawImage(bitmap, 0, 0);
  return traceOutline(context.getImageData(0, 0, bitmap.width, bitmap.height).data, bitmap.width, bitmap.height);
}

/** The outline of the mask asset `assetId` (read from `url`), once traced; null until then, or if unreadable. */
export function useMaskOutline(assetId: string, url: string | null): Outline | null {
  const [outline, setOutline] = useState<Outline | null>(null);
  useEffect(() => {
    if (!url) return;
    let current = true;
    let job = traced.get(assetId);
    if (!job) {
      // A failure (a blocked or failed read) is not kept: the next page showing the mask tries again.
      job = trace(url).catch(() => null).then((found) => { if (!found) traced.delete(assetId); return found; });
      traced.set(assetId, job);
    }
    void job.then((found) => { if (current) setOutline(found); });
    return () => { current = false; };
  }, [assetId, url]);
  return outline;
}
