// Graphlake's build of FerretDB v1.24 (SQLite backend): how a document field is written in SQL.
// Copied into internal/backends/sqlite/metadata by scripts/build-services.sh.

package metadata

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/FerretDB/FerretDB/internal/util/fsql"
)

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

// graphlakeValueIndex reports whether an index is made on its fields' values (GraphlakeValueExpr).
// Not `_id_` (every `_id` lookup is written for upstream's expression), not a unique index (its
// fields' JSON text keeps MongoDB's rules: null equals null, true is not 1), not one over a field
// that cannot be written as a path, and not one over a field some document already holds an array
// at (at it or above it): queries would compare it as one value and miss that document.
func graphlakeValueIndex(ctx context.Context, db *fsql.DB, table string, index IndexInfo) bool {
	if index.Name == "_id_" || index.Unique {
		return false
	}

	var arrays []string

	for _, key := range index.Key {
		if _, ok := GraphlakeJSONPath(key.Field); !ok {
			return false
		}

		keys := strings.Split(key.Field, ".")
		for i := range keys {
			path, _ := GraphlakeJSONPath(strings.Join(keys[:i+1], "."))
			arrays = append(arrays, fmt.Sprintf("json_type(%s, '%s') = 'array'", DefaultColumn, path))
		}
	}

	var found int

	q := fmt.Sprintf("SELECT 1 FROM %q WHERE %s LIMIT 1", table, strings.Join(arrays, " OR "))
	err := db.QueryRowContext(ctx, q).Scan(&found)

	return errors.Is(err, sql.ErrNoRows) // an error also makes an upstream index: never wrong
}

// GraphlakeFieldExpr returns the SQL expression an index holds for a field: its value
// (GraphlakeValueExpr) in a value index, upstream's JSON text (`_ferretdb_sjson->"a"->"b"`) otherwise.
func GraphlakeFieldExpr(index IndexInfo, field string) string {
	if index.GraphlakeValue {
		if expr, ok := GraphlakeValueExpr(field); ok {
			return expr
		}
	}

	keys := strings.Split(field, ".")
	for i, key := range keys {
		keys[i] = fmt.Sprintf("%q", key)
	}

	return fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(keys, "->"))
}

// GraphlakePartialWhere returns the WHERE of a partial index (` WHERE <expr> IS NOT NULL AND ...` for
// each field of its partialFilterExpression, written as the index writes it: SQLite uses a partial
// index only for a query whose WHERE implies this one, which it sees for `<expr> = ?`, `<expr> > ?`
// or `<expr> IN (...)` on the very same expression), or "" for an index on every document.
//
// A field holding null is in the index by MongoDB's `$exists`; a value index leaves it out (its
// value is NULL), which changes nothing that SQLite uses the index for: no query whose WHERE
// implies `<expr> IS NOT NULL` matches a NULL there.
func GraphlakePartialWhere(index IndexInfo) string {
	if len(index.GraphlakePartial) == 0 {
		return ""
	}

	conds := make([]string, len(index.GraphlakePartial))
	for i, field := range index.GraphlakePartial {
		conds[i] = GraphlakeFieldExpr(index, field) + " IS NOT NULL"
	}

	return " WHERE " + strings.Join(conds, " AND ")
}
