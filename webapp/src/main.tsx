import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Router } from "wouter";

import { App } from "./App";
import { manageScrolling } from "./listMemory";
import { BASE } from "./root";
import "./style.css";

manageScrolling();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    {/* The app's paths (/assets/ID, /events) under the path Graphlake is served under (root.ts). */}
    <Router base={BASE}>
      <App />
    </Router>
  </StrictMode>,
);
