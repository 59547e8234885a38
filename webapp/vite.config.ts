// Graphlake serves dist/index.html at / (and at every client route) and the hashed files under
// /app/assets/ with a year-long immutable cache (graphlake/webapp.py): hence base "/app/".
// `npm run dev` serves the app with hot reload and passes /graphql (HTTP and WebSocket) and the
// signed /blobs routes to a running Graphlake (GRAPHLAKE_URL, default http://127.0.0.1:8000).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const lake = process.env.GRAPHLAKE_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/app/",
  plugins: [react()],
  build: { outDir: "dist", assetsDir: "assets", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      "/graphql": { target: lake, ws: true, changeOrigin: true },
      "/blobs": { target: lake, changeOrigin: true },
    },
  },
});
