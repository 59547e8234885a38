// What the npm graphql-ws client makes of a token revoked while its socket is open: prints READY once
// heartbeats arrive, then one JSON line with the error its subscription got, then one saying how the
// socket closed and whether the client gave up on it (fatal) or would reconnect.
//   node revoked_token.cjs URL TOKEN   (ASSETS_NODE_MODULES: where npm installed)
const path = require("path");
const modules = process.env.ASSETS_NODE_MODULES;
const { createClient } = require(path.join(modules, "graphql-ws"));
const WebSocket = require(path.join(modules, "ws"));

const [url, token] = process.argv.slice(2);
let ready = false;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  lazy: false, // an app's long-lived connection: the socket outlives its subscriptions
  // Asked only about closes the client may retry; the fatal ones reach onNonLazyError instead.
  shouldRetry: (closeEvent) => {
    console.log(JSON.stringify({ closed: closeEvent.code, fatal: false }));
    process.exit(0);
  },
  onNonLazyError: (closeEvent) => {
    console.log(JSON.stringify({ closed: closeEvent.code, fatal: true }));
    process.exit(0);
  },
});
client.subscribe(
  { query: "subscription { heartbeat(intervalSeconds: 0.1) { sequence } }" },
  {
    next: () => {
      if (!ready) console.log("READY");
      ready = true;
    },
    error: (error) => console.log(JSON.stringify({ error })),
    complete: () => {},
  },
);
