// Traces a mask's outline (maskOutline.ts) off the page's main thread: the mask's bytes come in, its
// outline (or null, if they are no image) goes back. Decoding, reading and tracing a large mask (a
// 4000 x 3000 one is 12 million pixels) took the page's main thread long enough to freeze it.
import type { Outline } from "./maskOutline";

self.onmessage = async (event: MessageEvent<Blob>) => {
  let outline: Outline | null = null;
  try {
    const bitmap = await createImageBitmap(event.data);
    const { width, height } = bitmap;
    const context = new OffscreenCanvas(width, height).getContext("2d");
    context?.drawImage(bitmap, 0, 0);
    bitmap.close();
    if (context) outline = traceOutline(context.getImageData(0, 0, width, height).data, width, height);
  } catch {
    // Bytes no browser decodes: no outline (the page's <image> shows nothing of them either).
  }
  self.postMessage(outline);
};

/**
 * The boundary of a mask's pixels that show (luminance times alpha over half: what the luminance
 * mask drawing it shows most of) as closed loops along pixel edges, a segment per straight run.
 */
function traceOutline(rgba: Uint8ClampedArray, w: number, h: number): Outline {
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
