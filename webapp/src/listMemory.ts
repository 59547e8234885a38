// Lists loaded a page at a time, remembered in their history entry: Back to a page (or a reload)
// loads the same pages again (urql answers them from its cache) and scrolls to where it was. A page
// had come back at its first page, at the top, however far the user had scrolled or shown more
// before opening an item. The search stays in the URL (queryFields.ts); this keeps what a URL
// should not: how far down one reader got.
// Remembered: the assets, collections, a collection's items, the datasets, the utilization's groups,
// and an asset's own lists (its collections, datums, derived assets and annotations, "Show more" at a
// time). Not the events
// (live, asked from the network each time: its cursors would be stale) nor a dataset's versions
// (each page is asked from the one before it, from the network too): those pages open at the top.
import { useEffect, useRef, useState } from "react";

type Cursors = (string | null)[];
/** What the app keeps in a history entry (beside what the router keeps there). */
type Memory = { lists?: Record<string, Cursors>; scrollY?: number };

const memory = (): Memory => (history.state ?? {}) as Memory;
const keep = (change: Memory) => history.replaceState({ ...history.state, ...change }, "");

/**
 * Once, at start-up: the app, not the browser, scrolls a page on Back, Forward and reload. The
 * browser restores its guess right after the page draws what it has at once: when a remembered
 * list's pages were still on their way it stopped short (at the end of what was drawn: an asset's
 * first 20 collections), and useScrollMemory moved the page again. Pages
 * that remember nothing open at the top (the layout's scroll), as they did: their contents are asked
 * afresh (the events, a dataset's versions), so the browser's guess found them short anyway.
 */
export function manageScrolling() {
  history.scrollRestoration = "manual";
}

/** Keeps a list's cursors in the history entry; a list at its first page has nothing to remember. */
function remember(key: string, cursors: Cursors) {
  const lists = { ...memory().lists };
  if (cursors.length > 1) lists[key] = cursors; else delete lists[key];
  keep({ lists });
}

/** A list's page cursors (as useState gives them: null for the first page), kept in the history entry
 *  under `key` (the list's query: another search is another list, which starts at its first page) for
 *  as long as the list is shown. */
export function useListMemory(key: string) {
  const [cursors, setCursors] = useState<Cursors>(() => memory().lists?.[key] ?? [null]);
  useEffect(() => remember(key, cursors), [key, cursors]);
  // Forgotten when it goes. A search typed again (another in between) had come back with the pages
  // its first showing had loaded, and Back then showed those too, rather than the page it was left at.
  // Leaving for another page, the entry is already the next one's (a link pushed it, or Back or
  // Forward moved to it), where this list has nothing to forget: its own entry keeps it for Back.
  useEffect(() => () => remember(key, [null]), [key]);
  return [cursors, setCursors] as const;
}

/** Where a page that remembers its lists was scrolled, kept in its history entry, and scrolled back to
 *  when the page is shown from that entry again, once its lists are tall enough. Once per page. */
export function useScrollMemory() {
  const target = useRef<number | null>(null);
  if (target.current === null) target.current = memory().scrollY ?? 0;  // before anything scrolls this page
  useEffect(() => {
    let restoring = Boolean(target.current);
    let timer = 0;
    let frame = 0;
    const save = () => keep({ scrollY: window.scrollY });
    const scrolled = () => {
      if (restoring) return;  // the layout's scroll to the top must not overwrite where it is going back to
      clearTimeout(timer);
      timer = window.setTimeout(save, 150);
    };
    window.addEventListener("scroll", scrolled, { passive: true });
    // After the page's own effects (the layout scrolls a new page to the top), once the pages are tall enough.
    let frames = 0;
    const step = () => {
      const y = target.current!;
      if (document.documentElement.scrollHeight - window.innerHeight >= y || ++frames > 120) {
        window.scrollTo(0, y);
        restoring = false;
        save();
        return;
      }
      frame = requestAnimationFrame(step);
    };
    if (restoring) frame = requestAnimationFrame(step);
    return () => { clearTimeout(timer); cancelAnimationFrame(frame); window.removeEventListener("scroll", scrolled); };
  }, []);
}
