// A file downloaded through a URL the server signs at the click: one signed as the page loaded would
// expire while the page stays open. The asset page's Download and a version's content file use it.
import { useState } from "react";
import type { CombinedError } from "urql";

import { errorText, safeUrl, startDownload } from "../client";

/** `download` asks `sign` for a fresh URL and saves what it answers; `problem` says why it could not. */
export function useSignedDownload(sign: () => Promise<{ url?: string | null; error?: CombinedError }>, missing: string) {
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const download = async () => {
    setBusy(true);
    setProblem(null);
    const { url, error } = await sign();
    setBusy(false);
    const safe = safeUrl(url);
    if (safe) startDownload(safe);
    else setProblem(error ? errorText(error) : missing);
  };
  return { download, busy, problem };
}
