// Runs the script of Graphlake's GraphiQL page (HTML on stdin) against stand-ins for React, GraphiQL
// and the browser, and checks that editing the headers gives GraphiQL a new fetcher (so it fetches
// the schema again, now with the token) while each fetcher sends the headers it is given.
//   node graphiql_page.cjs < page.html      prints OK, or fails with the reason
const vm = require("vm");
const assert = require("assert");

const html = require("fs").readFileSync(0, "utf8");
const scripts = [...html.matchAll(/<script nonce="[\w-]+">([\s\S]*?)<\/script>/g)].map((m) => m[1]);
assert.strictEqual(scripts.length, 1, "the page has one inline script");

const renders = [];
const timers = new Map();
let nextTimer = 1;
const sent = [];
const sandbox = {
  URL,
  location: { href: "http://lake.test/graphql" },
  window: { sessionStorage: "sessionStorage" },
  document: { getElementById: () => ({}) },
  React: { createElement: (type, props) => ({ type, props }) },
  ReactDOM: { createRoot: () => ({ render: (element) => renders.push(element) }) },
  GraphiQL: "GraphiQL",
  graphqlWs: { createClient: () => ({ iterate: () => null, dispose: () => null }) },
  fetch: async (url, init) => {
    sent.push({ url, headers: init.headers, body: JSON.parse(init.body) });
    return { status: 200, text: async () => '{"data": {"__typename": "Query"}}' };
  },
  setTimeout: (fn) => { const id = nextTimer++; timers.set(id, fn); return id; },
  clearTimeout: (id) => timers.delete(id),
};
vm.createContext(sandbox);
vm.runInContext(scripts[0], sandbox);

(async () => {
  assert.strictEqual(renders.length, 1, "GraphiQL is rendered once at start");
  const first = renders[0].props;
  assert.strictEqual(renders[0].type, "GraphiQL");
  assert.strictEqual(typeof first.onEditHeaders, "function", "the page listens to edits of the headers");
  assert.strictEqual(first.storage, "sessionStorage", "the token typed is kept for the browser tab only");
  first.onEditHeaders('{"Authorization": "Bearer g"}');
  first.onEditHeaders('{"Authorization": "Bearer glk_t"}');
  assert.strictEqual(timers.size, 1, "edits in quick succession wait for a pause");
  for (const fn of [...timers.values()]) fn();
  assert.strictEqual(renders.length, 2, "a pause in editing renders GraphiQL again");
  const second = renders[1].props;
  assert.notStrictEqual(second.fetcher, first.fetcher, "with a new fetcher, so it introspects again");
  const answer = await second.fetcher({ query: "{ __typename }" }, { headers: { Authorization: "Bearer glk_t" } });
  assert.strictEqual(JSON.stringify(answer), JSON.stringify({ data: { __typename: "Query" } }));
  assert.strictEqual(sent[0].headers.Authorization, "Bearer glk_t", "the fetcher sends the headers typed");
  assert.strictEqual(sent[0].url, "http://lake.test/graphql");
  console.log("OK");
})().catch((error) => { console.error(error.message); process.exit(1); });
