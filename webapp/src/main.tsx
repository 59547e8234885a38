import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App";
import { manageScrolling } from "./listMemory";
import "./style.css";

manageScrolling();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
