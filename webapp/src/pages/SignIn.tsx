import { useState } from "react";

export function SignIn({ error, initial = "", onSubmit }: {
  error: string | null; initial?: string; onSubmit: (token: string) => void;
}) {
  const [token, setToken] = useState(initial);
  const trimmed = token.trim();
  return (
    <main className="signin">
      <h1>Graphlake</h1>
      <form onSubmit={(e) => { e.preventDefault(); if (trimmed) onSubmit(trimmed); }}>
        <label htmlFor="token">API token</label>
        <input id="token" name="token" type="password" autoComplete="off" autoFocus value={token}
          placeholder="glk_..." onChange={(e) => setToken(e.target.value)} />
        <button type="submit" disabled={!trimmed}>Sign in</button>
        {error && <p role="alert" className="error">{error}</p>}
        <p className="hint">
          <code>make run</code> prints an admin token on the first start; make others with
          <code> graphlake token create NAME --role viewer</code>. The token is kept for this browser tab only.
        </p>
      </form>
    </main>
  );
}
