// The signed-in token, kept in sessionStorage (gone when the browser tab closes, never in a cookie),
// and who it is (`me`): its role decides which write controls the app shows.
import { createContext, useContext } from "react";

import type { LakeClient } from "./client";
import type { Role } from "./generated/graphql";

export const TOKEN_KEY = "graphlake.token";

export type Session = {
  token: string;
  tokenName: string;
  role: Role;
  version: string;
  signOut: () => void;
  onSocket: LakeClient["onSocket"];
};

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in app");
  return session;
}

/** VIEWER tokens read only; the server refuses their writes anyway, the app just does not offer them. */
export function canWrite(role: Role): boolean {
  return role === "CONTRIBUTOR" || role === "ADMIN";
}
