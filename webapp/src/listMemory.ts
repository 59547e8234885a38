// A list scrolled a page at a time, remembered in its history entry: Back to it loads the same pages
// again (urql answers them from its cache) and scrolls to where it was. It had come back at its
// first page, at the top, however far the user had scrolled before opening an item. The search stays
// in the URL (queryFields.ts); this keeps what a URL should not: how far down one reader got.
// One list per page (one slot per history entry): the assets, collections, a collection's items and
// the datasets. Not the events (live, asked from the network each time: its cursors would be stale)
// nor a dataset's versions (each page is asked from the one before it, from the network too).
import { useEffect, useRef, useState } from "react";

type Cursors = (string | null)[];
type Memory = { key: string; cursors: Cursors; scrollY: number };

/** The list's page cursors (as useState gives them), kept in the history entry under `key` (the
 *  list's query: another search is another list, which starts at its first page). */
export function useListMemory(key: string) {
  const restored = useRef<Memory | null>(null);
  if (restored.current === null) {
    const saved = (history.state as { list?: Memory } | null)?.list;
    restored.current = saved?.key === key ? saved : { key, cursors: [null], scrollY: 0 };
  }
  const [cursors, setCursors] = useState<Cursors>(restored.current.cursors);
  useEffect(() => {
    const save = () => history.replaceState({ ...history.state, list: { key, cursors, scrollY: window.scrollY } }, "");
    save();
    let timer = 0;
    const scrolled = () => { clearTimeout(timer); timer = window.setTimeout(save, 150); };
    window.addEventListener("scroll", scrolled, { passive: true });
    return () => { clearTimeout(timer); window.removeEventListener("scroll", scrolled); };
  }, [key, cursors]);
  useEffect(() => {
    // After the page's own effects (the layout scrolls a new page to the top), once the pages are tall enough.
    const target = restored.current?.scrollY ?? 0;
    if (!target) return;
    let frames = 0;
    const step = () => {
      if (document.documentElement.scrollHeight - window.innerHeight >= target || ++frames > 120) {
        window.scrollTo(0, target);
        return;
      }
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }, []);
  return [cursors, setCursors] as const;
}
