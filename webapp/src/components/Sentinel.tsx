// The bottom of a list that asks for the next page as it comes into view (a little before: 400px),
// so scrolling never waits on an empty screen.
import { useEffect, useRef } from "react";

export function Sentinel({ next, onMore }: { next: string; onMore: (cursor: string) => void }) {
  const element = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const target = element.current;
    if (!target) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) onMore(next);
    }, { rootMargin: "400px" });
    observer.observe(target);
    return () => observer.disconnect();
  }, [next, onMore]);
  return <div ref={element} className="muted sentinel">Loading more…</div>;
}

/** The cursors of the pages a list shows: the first page, then one per endCursor reached. */
export function addCursor(cursor: string) {
  return (list: (string | null)[]) => (list.includes(cursor) ? list : [...list, cursor]);
}
