// One urql client per token: queries and mutations over HTTP POST to /graphql, subscriptions over
// graphql-ws on the same path (the token goes into connection_init, as GraphiQL's does).
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "@urql/core";
import { createClient as createWsClient } from "graphql-ws/client";

export const GRAPHQL_PATH = "/graphql";

export type LakeClient = { client: Client; dispose: () => void };

export function makeClient(token: string): LakeClient {
  const wsUrl = new URL(GRAPHQL_PATH, location.href).href.replace(/^http/, "ws");
  const ws = createWsClient({
    url: wsUrl,
    connectionParams: { Authorization: `Bearer ${token}` },
    lazy: true,
    // The server restarting or a laptop waking up: resubscribe rather than show a dead stream.
    retryAttempts: Infinity,
    shouldRetry: () => true,
  });
  const client = new Client({
    url: GRAPHQL_PATH,
    // Lists change under the user (uploads, other writers): ask again on each visit, show the cached page meanwhile.
    requestPolicy: "cache-and-network",
    // POST: search terms and IDs stay out of URLs (and so out of access logs and history).
    preferGetMethod: false,
    fetchOptions: () => ({
      headers: {
        Authorization: `Bearer ${token}`,
        // One JSON answer per query. urql's default Accept also lists text/event-stream, and Graphlake
        // then answers over Server-Sent Events, which urql 5 reads as "No Content" for a query.
        Accept: "application/graphql-response+json, application/json",
      },
    }),
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  return { client, dispose: () => void ws.dispose() };
}

/** The message a person can act on: GraphQL errors carry the server's words and code. */
export function errorText(error: { graphQLErrors?: readonly { message: string; extensions?: Record<string, unknown> }[]; networkError?: Error; message: string }): string {
  const first = error.graphQLErrors?.[0];
  if (first) {
    const code = first.extensions?.code;
    return code ? `${first.message} (${String(code)})` : first.message;
  }
  if (error.networkError) return `Graphlake is not reachable: ${error.networkError.message}`;
  return error.message;
}
