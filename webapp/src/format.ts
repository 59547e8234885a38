// Small display helpers shared by the pages.

export function bytes(size: number | null | undefined): string {
  if (size == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" }) : "";
}

// Distinct, saturated colours that stand out on photographs and on each other.
const PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#dcbeff"];

/** A stable colour per label, so a label looks the same on every image. */
export function labelColour(label: string | null | undefined): string {
  let hash = 0;
  for (const ch of label ?? "") hash = (hash * 31 + ch.charCodeAt(0)) | 0;
  return PALETTE[Math.abs(hash) % PALETTE.length];
}

/** "a, b ,c" -> ["a", "b", "c"]; empty -> null (no filter). */
export function words(text: string): string[] | null {
  const list = text.split(",").map((w) => w.trim()).filter(Boolean);
  return list.length ? list : null;
}

/** "1 asset", "3 assets": a count with its noun. */
export function counted(n: number, noun: string): string {
  return `${n} ${n === 1 ? noun : `${noun}s`}`;
}
