// The asset search's JSON predicates, typed as text: `plate = 7; sensor.temperature >= 20.5;
// operator ~ ali; tag in ["a", "b"]; reviewed exists`. Each becomes a JsonPredicate (path, op, value)
// that the server answers from its index of JSON paths.
import type { JsonOp, JsonPredicate } from "./generated/graphql";

// "==" is read as "=" (how most languages spell equality): split as "=" it compared with the text "= 1".
const OPS: [string, JsonOp][] = [
  ["==", "EQ"], [">=", "GTE"], ["<=", "LTE"], ["!=", "NE"], ["=", "EQ"], [">", "GT"], ["<", "LT"], ["~", "CONTAINS"],
  [" not in ", "NIN"], [" in ", "IN"], [" matches ", "REGEX"],
];

export const PREDICATE_HELP = 'path = value; path > 3; path ~ text; path in ["a", "b"]; path exists';

/** The predicates in `text` (";"-separated), or the first one that cannot be read and why. */
export function parsePredicates(text: string): { predicates: JsonPredicate[] | null } | { error: string } {
  const predicates: JsonPredicate[] = [];
  for (const part of text.split(";").map((p) => p.trim()).filter(Boolean)) {
    const exists = part.match(/^(\S+)\s+(exists|missing)$/);
    if (exists) {
      predicates.push({ path: exists[1], op: "EXISTS", value: exists[2] === "exists" });
      continue;
    }
    const found = OPS.map(([symbol, op]) => ({ symbol, op, at: part.indexOf(symbol) })).filter((o) => o.at > 0)
      .sort((a, b) => a.at - b.at || b.symbol.length - a.symbol.length)[0];
    if (!found) return { error: `cannot read "${part}": write ${PREDICATE_HELP}` };
    const path = part.slice(0, found.at).trim();
    const raw = part.slice(found.at + found.symbol.length).trim();
    if (!path || /\s/.test(path)) return { error: `"${part}": the path before ${found.symbol.trim()} must be keys joined by "." (no spaces)` };
    if (!raw) return { error: `"${part}": a value must follow ${found.symbol.trim()}` };
    // A value that starts with another operator is a typo ("plate >= = 7", "plate => 7"), not a text to match.
    if (/^[=<>!~]/.test(raw)) return { error: `"${part}": write one operator (${OPS.slice(0, 8).map(([s]) => s).join(" ")})` };
    const value = jsonOrText(raw);
    if ((found.op === "IN" || found.op === "NIN") && !Array.isArray(value)) {
      return { error: `"${part}": ${found.symbol.trim()} takes a list, e.g. ["a", "b"]` };
    }
    predicates.push({ path, op: found.op, value });
  }
  return { predicates: predicates.length ? predicates : null };
}

// 7, true, null, "quoted" and [lists] are JSON; anything else is the text itself (so plate = A7 works).
function jsonOrText(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
