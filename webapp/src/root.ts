// Where Graphlake is, as the browser reaches it: at "/", or under the path a proxy serves it under
// (GRAPHLAKE_PUBLIC_URL=https://host/lake: "/lake/"), which Graphlake writes into the page it serves
// (<meta name="graphlake-root">, graphlake/webapp.py). The app's routes, /graphql, the content route
// and GraphiQL are all under it; read once, as the page loads.
const declared = document.querySelector<HTMLMetaElement>('meta[name="graphlake-root"]')?.content || "/";
const root = new URL(declared, location.href).pathname.replace(/\/*$/, "/");

/** The router's base: "" at the server's root, else the path without its last slash ("/lake"). */
export const BASE = root.slice(0, -1);

/** A server path ("/graphql") as the browser must ask for it ("/lake/graphql"). */
export function lakePath(path: string): string {
  return `${BASE}${path}`;
}
