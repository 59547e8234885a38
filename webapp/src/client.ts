// One urql client per token: queries and mutations over HTTP POST to /graphql, subscriptions over
// graphql-ws on the same path (the token goes into connection_init, as GraphiQL's does).
import { Client, cacheExchange, fetchExchange, mapExchange, subscriptionExchange } from "@urql/core";
import { createClient as createWsClient } from "graphql-ws/client";

import { lakePath } from "./root";

export const GRAPHQL_PATH = lakePath("/graphql");  // under the path a proxy serves Graphlake under (root.ts)
// Graphlake closes a socket whose token is refused at connection_init with 4403, and one whose token
// is revoked or expires while it is open with 4401 (graphlake/websocket_handlers.py): both final here.
const TOKEN_CLOSE_CODES = [4401, 4403];

export type SocketStatus = "connecting" | "live" | "reconnecting";
export type LakeClient = {
  client: Client;
  dispose: () => void;
  /** Follows the WebSocket's state (the events page shows it); returns the unsubscribe. */
  onSocket: (listener: (status: SocketStatus) => void) => () => void;
};

export function makeClient(token: string, onTokenRefused: (reason: string) => void): LakeClient {
  const listeners = new Set<(status: SocketStatus) => void>();
  let status: SocketStatus = "connecting";
  const tell = (next: SocketStatus) => { status = next; listeners.forEach((l) => l(next)); };
  const closedForToken = (event: unknown) => TOKEN_CLOSE_CODES.includes((event as CloseEvent)?.code);

  const wsUrl = new URL(GRAPHQL_PATH, location.href).href.replace(/^http/, "ws");
  const ws = createWsClient({
    url: wsUrl,
    connectionParams: { Authorization: `Bearer ${token}` },
    lazy: true,
    // The server restarting or a laptop waking up: resubscribe rather than show a dead stream; but
    // a refused token stays refused.
    retryAttempts: Infinity,
    shouldRetry: (event) => !closedForToken(event),
    on: {
      connected: () => tell("live"),
      closed: (event) => {
        if (closedForToken(event)) onTokenRefused((event as CloseEvent).reason || "the token was refused");
        // 1000: closed on purpose (lazy: no subscription left); anything else was lost.
        else tell((event as CloseEvent)?.code === 1000 ? "connecting" : "reconnecting");
      },
    },
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
      // A token revoked or expired while the app is open: back to sign-in, saying why.
      mapExchange({
        onError(error) {
          const refused = error.graphQLErrors.find((e) => e.extensions?.code === "UNAUTHENTICATED");
          if (refused) onTokenRefused(refused.message);
        },
      }),
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
  return {
    client,
    dispose: () => void ws.dispose(),
    onSocket: (listener) => {
      listeners.add(listener);
      listener(status);
      return () => listeners.delete(listener);
    },
  };
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

/** Only http(s) URLs become links or images: an EXTERNAL asset's URL is whatever was registered. */
export function safeUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    return ["http:", "https:"].includes(new URL(url, location.href).protocol) ? url : null;
  } catch {
    return null;
  }
}

/** Save what a signed URL answers (an attachment): the browser downloads it and the page stays. The
 *  URL is asked for at the click by the caller: one signed when the page loaded would expire while
 *  the page stays open. */
export function startDownload(url: string): void {
  const link = document.createElement("a");
  link.href = url;
  document.body.append(link);
  link.click();
  link.remove();
}
