import { useEffect, useRef } from "react";
import { Link, Route, Switch, useLocation } from "wouter";

import { AssetList } from "./pages/AssetList";
import { AssetPage } from "./pages/AssetPage";
import { CollectionList, CollectionPage } from "./pages/Collections";
import { DatasetList, DatasetPage } from "./pages/Datasets";
import { Events } from "./pages/Events";
import { Upload } from "./pages/Upload";
import { Utilization } from "./pages/Utilization";
import { lakePath } from "./root";
import { canWrite, useSession } from "./session";

// The page's name, for the window's title and for a screen reader arriving at its content.
const PAGES: Record<string, [string, string]> = {
  "": ["Assets", "Asset"], assets: ["Assets", "Asset"], collections: ["Collections", "Collection"],
  datasets: ["Datasets", "Dataset"], events: ["Events", "Events"], utilization: ["Utilization", "Utilization"],
  upload: ["Upload", "Upload"],
};

function pageName(path: string): string {
  const [section = "", item] = path.split("/").filter(Boolean);
  const names = Object.hasOwn(PAGES, section) ? PAGES[section] : undefined;
  return names ? names[item ? 1 : 0] : "Not found";
}

export function Layout() {
  const session = useSession();
  const writer = canWrite(session.role);
  // After a link (or Enter on one) opens another page, the keyboard's focus and a screen reader start
  // at its content, at the top, as after a full page load; otherwise focus stays on a link that is
  // gone and Tab starts over from the page's beginning. Not on the first page: a load does that itself.
  const [path] = useLocation();
  const main = useRef<HTMLElement>(null);
  const shown = useRef(path);
  const name = pageName(path);
  useEffect(() => { document.title = `${name} · Graphlake`; }, [name]);
  useEffect(() => {
    if (shown.current === path) return;
    shown.current = path;
    window.scrollTo(0, 0);
    main.current?.focus({ preventScroll: true });
  }, [path]);
  return (
    <>
      {/* The first thing Tab reaches: past the header's nine links to the page's own content. */}
      <a href="#content" className="skip" onClick={(e) => { e.preventDefault(); main.current?.focus(); }}>Skip to content</a>
      <header className="top">
        <Link href="/" className="brand">Graphlake</Link>
        <nav>
          <Link href="/">Assets</Link>
          <Link href="/collections">Collections</Link>
          <Link href="/datasets">Datasets</Link>
          <Link href="/events">Events</Link>
          <Link href="/utilization">Utilization</Link>
          {writer && <Link href="/upload">Upload</Link>}
          <a href={lakePath("/graphql")} target="_blank" rel="noreferrer">GraphiQL</a>
        </nav>
        <span className="who">
          <span data-testid="token-name">{session.tokenName}</span>{" "}
          <span className={`role role-${session.role}`} data-testid="role">{session.role}</span>
          {!writer && <span className="readonly"> read-only</span>}
          <button type="button" className="link" onClick={session.signOut}>Sign out</button>
        </span>
      </header>
      <main className="page" id="content" tabIndex={-1} ref={main} aria-label={name}>
        <Switch>
          <Route path="/"><AssetList /></Route>
          <Route path="/assets"><AssetList /></Route>
          {/* Keyed by id: another asset's, collection's or dataset's lists start afresh, not from this one's cursors. */}
          <Route path="/assets/:id">{(params) => <AssetPage key={params.id} id={decodeURIComponent(params.id)} />}</Route>
          <Route path="/collections"><CollectionList /></Route>
          <Route path="/collections/:id">{(params) => <CollectionPage key={params.id} id={decodeURIComponent(params.id)} />}</Route>
          <Route path="/datasets"><DatasetList /></Route>
          <Route path="/datasets/:id">{(params) => <DatasetPage key={params.id} id={decodeURIComponent(params.id)} />}</Route>
          <Route path="/events"><Events /></Route>
          <Route path="/utilization"><Utilization /></Route>
          <Route path="/upload">{writer ? <Upload /> : <p>A {session.role} token cannot upload.</p>}</Route>
          <Route><p>No page here. <Link href="/">Back to the assets</Link></p></Route>
        </Switch>
      </main>
    </>
  );
}
