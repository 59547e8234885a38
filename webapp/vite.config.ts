// Graphlake serves dist/index.html at / (and at every client route) and the hashed files under
// /app/assets/ with a year-long immutable cache (graphlake/webapp.py). A build's base is relative
// ("./"): the files find one another (chunks, the mask worker) from their own URL, whatever path a
// proxy serves Graphlake under, and Graphlake writes that path into the page it serves (the files'
// URLs, and the app's root in <meta name="graphlake-root">, from GRAPHLAKE_PUBLIC_URL).
// `npm run dev` serves the app at / with hot reload and passes /graphql (HTTP and WebSocket), the
// signed /blobs routes and the content route (/assets/ID/content: a value's or text's download) to a
// running Graphlake (GRAPHLAKE_URL, default http://127.0.0.1:8000), which must list the dev origin in
// GRAPHLAKE_CORS_ORIGINS (its WebSocket origin check, and uploads' PUTs). Any other path is the app's
// (Vite answers its page), as /assets/ID is.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const lake = process.env.GRAPHLAKE_URL ?? "http://127.0.0.1:8000";

export default defineConfig(({ command }) => ({
  base: command === "build" ? "./" : "/",
  plugins: [react()],
  build: { outDir: "dist", assetsDir: "assets", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      "/graphql": { target: lake, ws: true, changeOrigin: true },
      "/blobs": { target: lake, changeOrigin: true },
      // A key starting with ^ is a regular expression: the content route only, not the app's /assets/ID.
      "^/assets/[^/]+/content(\\?|$)": { target: lake, changeOrigin: true },
    },
  },
}));
