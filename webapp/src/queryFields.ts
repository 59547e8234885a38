// A page's search form mirrored in the query string (/assets?labels=plate&kind=FILE): a link, a
// bookmark or a reload opens the same search, and Back from an asset returns to it.
import { useCallback, useEffect, useRef, useState } from "react";
import { useSearch } from "wouter";

const PAUSE_MS = 300; // typing waits for a pause before the server is asked again

type Fields = Record<string, string>;

/**
 * The form's fields as typed, a setter for one of them, and the fields as of the last pause in
 * typing (what the page asks the server for). `read` gives the fields a query string asks for,
 * unknown values as their defaults; it must be a module-level function (it is not a dependency).
 * Empty fields are left out of the query string.
 */
export function useQueryFields<T extends Fields>(read: (query: URLSearchParams) => T) {
  const [fields, setFields] = useState<T>(() => read(new URLSearchParams(location.search)));
  const [settled, setSettled] = useState<T>(fields);
  // A link to the page (the header's) while it is open changes the query string under it: the
  // fields follow, so what is shown is what the URL says. Our own writes below are not news.
  const search = useSearch();
  const written = useRef(search);
  useEffect(() => {
    if (search === written.current) return;
    written.current = search;
    setFields(read(new URLSearchParams(search)));
  }, [search]); // `read` is a module-level function: never changes
  useEffect(() => {
    const timer = setTimeout(() => {
      setSettled((old) => (JSON.stringify(old) === JSON.stringify(fields) ? old : fields));
      const query = new URLSearchParams(Object.entries(fields).filter(([, v]) => v.trim()));
      written.current = query.toString();
      history.replaceState(history.state, "", query.size ? `?${query}` : location.pathname);
    }, PAUSE_MS);
    return () => clearTimeout(timer);
  }, [fields]);
  const set = useCallback((name: keyof T, value: string) => setFields((old) => ({ ...old, [name]: value })), []);
  return { fields, set, settled };
}

/** `value` if it is one of `allowed`, else "" (a hand-edited or stale link falls back to the default). */
export function oneOf<V extends string>(value: string | null, allowed: readonly V[]): V | "" {
  return allowed.find((a) => a === value) ?? "";
}
