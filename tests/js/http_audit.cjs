// Runs the GraphQL over HTTP audit of the npm graphql-http package (its serverAudits, the suite the
// GraphQL Foundation's spec points servers at) against a running server, and prints every result as
// one JSON array: [{id, name, status, reason}], status "ok", "notice" (MAY), "warn" (SHOULD) or "error" (MUST).
//   node http_audit.cjs URL TOKEN   (ASSETS_NODE_MODULES: where npm installed)
// The token goes on every request: the audit introspects (`__type`), which Graphlake refuses callers without one.
const path = require("path");
const { auditServer } = require(path.join(process.env.ASSETS_NODE_MODULES, "graphql-http"));

const [url, token] = process.argv.slice(2);

function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

auditServer({ url, fetchFn: fetchWithToken }).then(
  (results) => {
    console.log(JSON.stringify(results.map(({ id, name, status, reason }) => ({ id, name, status, reason }))));
  },
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
