// Subscribes to events over Server-Sent Events with the npm graphql-sse client (distinct connections
// mode, its default, as a browser or Node app would) and prints each event as a JSON line; exits
// after COUNT events. The test waits on the server's subscriber count to know it is listening.
//   node subscribe_events_sse.cjs URL TOKEN COUNT EVENT_TYPE   (ASSETS_NODE_MODULES: where npm installed)
const path = require("path");
const { createClient } = require(path.join(process.env.ASSETS_NODE_MODULES, "graphql-sse"));

const [url, token, count, eventType] = process.argv.slice(2);
let received = 0;
const client = createClient({
  url,
  headers: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
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
      console.error(error instanceof Error ? error.stack : JSON.stringify(error));
      process.exit(2);
    },
    complete: () => {
      console.error("completed before the events came");
      process.exit(3);
    },
  },
);
