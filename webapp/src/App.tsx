// Sign-in first; then the app, with one urql client for the token (see client.ts).
import { useEffect, useMemo, useState } from "react";
import { Provider } from "urql";

import { errorText, makeClient } from "./client";
import { MeDocument, type MeQuery } from "./generated/graphql";
import { Layout } from "./Layout";
import { SignIn } from "./pages/SignIn";
import { SessionContext, TOKEN_KEY } from "./session";
import { forgetKeptUploads } from "./upload";

export function App() {
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN_KEY));
  const [me, setMe] = useState<MeQuery | null>(null);
  const [error, setError] = useState<string | null>(null);
  // The last token tried, given back to the sign-in form when the server refuses it: a typo is
  // mended in place rather than the whole token pasted again. In memory only, never stored.
  const [tried, setTried] = useState("");
  const lake = useMemo(() => (token ? makeClient(token, (reason) => {
    sessionStorage.removeItem(TOKEN_KEY);
    setError(`${reason} (UNAUTHENTICATED)`);
    setMe(null);
    setToken(null);
  }) : null), [token]);
  useEffect(() => () => lake?.dispose(), [lake]);

  // A token is kept only once the server has accepted it: a typo or a revoked token shows the
  // server's reason on the sign-in form rather than an app full of errors.
  useEffect(() => {
    if (!lake || !token) return;
    let current = true;
    lake.client.query(MeDocument, {}, { requestPolicy: "network-only" }).toPromise().then((result) => {
      if (!current) return;
      if (result.data?.me) {
        sessionStorage.setItem(TOKEN_KEY, token);
        setTried("");
        setMe(result.data);
        return;
      }
      sessionStorage.removeItem(TOKEN_KEY);
      setError(result.error ? errorText(result.error) : "Graphlake did not accept this token.");
      setToken(null);
    });
    return () => { current = false; };
  }, [lake, token]);

  if (!token || !lake) {
    return <SignIn error={error} initial={tried} onSubmit={(value) => { setError(null); setMe(null); setTried(value); setToken(value); }} />;
  }
  if (!me?.me) return <p className="center">Signing in…</p>;
  const signOut = () => {
    sessionStorage.removeItem(TOKEN_KEY);
    // The uploads kept for resuming name their sessions, which the next person here has no use for.
    forgetKeptUploads();
    setMe(null);
    setToken(null);
  };
  const session = { token, tokenName: me.me.tokenName, role: me.me.role, version: me.health.version, signOut,
    onSocket: lake.onSocket };
  return (
    <Provider value={lake.client}>
      <SessionContext.Provider value={session}>
        <Layout />
      </SessionContext.Provider>
    </Provider>
  );
}
