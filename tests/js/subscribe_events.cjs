// Subscribes to events with the npm graphql-ws client (as a browser or Node app would) and prints
// each event as a JSON line; prints READY once connected, exits after COUNT events. Connected is not
// listening (the protocol does not say when a subscription starts to): the test waits on the server's
// subscriber count for that before it logs anything.
//   node subscribe_events.cjs URL TOKEN COUNT EVENT_TYPE   (ASSETS_NODE_MODULES: where npm installed)
const path = require("path");
const modules = process.env.ASSETS_NODE_MODULES;
const { createClient } = require(path.join(modules, "graphql-ws"));
const WebSocket = require(path.join(modules, "ws"));

const [url, token, count, eventType] = process.argv.slice(2);
let received = 0;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  on: { connected: () => console.log("READY") },
});
client.subscribe(
  {
    query: "subscription ($f: EventFilter) { events(filter: $f) { id eventType message source { nodeId } } }",
    variables: { f: { eventTypes: [eventType] } },
  },
  {
    next: (message) => {
      console.log(JSON.stringify(message.data ? message.data.events : message));
      received += 1;
      if (received >= Number(count)) {
        client.dispose();
        process.exit(0);
      }
    },
    error: (error) => {
      console.error(JSON.stringify(error));
      process.exit(2);
    },
    complete: () => {},
  },
);
