// Graphlake's build of FerretDB v1.24 (SQLite backend): how a document field is written in SQL.
// Copied into internal/backends/sqlite/metadata by scripts/build-services.sh.

package metadata

import "strings"

// GraphlakeValueExpr returns the SQL expression for the scalar value of a dotted field, and
// whether the field can be written as one.
//
// Upstream indexes a field as `_ferretdb_sjson->"a"->"b"`: its JSON text, which orders numbers as
// text ("10" < "9") and strings by their escapes. `->>` gives the SQL value instead (TEXT for a
// string or an ObjectId's hex, INTEGER for an int, long, bool or a date's milliseconds, REAL for a
// double, NULL for null or a missing field), which SQLite orders as MongoDB orders values of one
// BSON type. Index definitions and queries use this one function, because SQLite uses an
// expression index only for the very same expression.
func GraphlakeValueExpr(field string) (string, bool) {
	path, ok := GraphlakeJSONPath(field)
	if !ok {
		return "", false
	}

	return DefaultColumn + "->>'" + path + "'", true
}

// GraphlakeJSONPath returns the SQLite JSON path of a dotted field (`$."a"."b"`), and whether it
// has one. A key must be non-empty, must not start with "$" (sjson keeps its schema in "$s"), and
// must not hold a quote, a backslash or a control character (SQLite's quoted path keys have no
// escapes, and the path sits inside a SQL string literal).
func GraphlakeJSONPath(field string) (string, bool) {
	if field == "" {
		return "", false
	}

	keys := strings.Split(field, ".")
	var b strings.Builder
	b.WriteString("$")

	for _, key := range keys {
		if key == "" || strings.HasPrefix(key, "$") || strings.ContainsAny(key, "\"'\\") {
			return "", false
		}

		for _, r := range key {
			if r < 0x20 || r == 0x7f {
				return "", false
			}
		}

		b.WriteString(`."`)
		b.WriteString(key)
		b.WriteString(`"`)
	}

	return b.String(), true
}
