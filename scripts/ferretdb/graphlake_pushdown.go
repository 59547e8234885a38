// Graphlake's build of FerretDB v1.24 (SQLite backend): filters and sorts pushed down to SQLite.
// Copied into internal/backends/sqlite by scripts/build-services.sh.
//
// Upstream reads every row of a collection for any filter but `{_id: v}` and sorts in Go, so a
// first page of a big collection cost a full scan. Here a query becomes:
//
//   - a WHERE that every document matching the filter passes. It may let more through (FerretDB
//     still applies the whole filter to what comes back), never fewer, so it only has to be right
//     in one direction, and a condition it cannot express is simply left out;
//   - an ORDER BY equal to MongoDB's order, with INDEXED BY an index that yields rows in that
//     order, when every sort key is a "value field" (below). The handler then skips its own
//     in-memory sort, and since rows are read lazily, a find with a limit stops reading SQLite after
//     its page: a page costs about (page size / share of rows matching), not the collection.
//
// Value fields. An index created here over plain dotted fields (not `_id_`) indexes their SQL
// values (metadata.GraphlakeValueExpr) and is marked GraphlakeValue. Its fields are taken to hold
// one scalar each (no array on the path), which InsertAll and UpdateAll enforce
// (graphlakeCheckScalars), so a condition on them is a plain comparison that the index serves.
// Sorting by them assumes one BSON type per field besides null (as Graphlake's schema has it):
// within a type SQLite orders values as MongoDB does; across types it would not.
// Any other field is matched through json_each, which sees arrays and scalars alike.

package sqlite

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/fsql"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// graphlakeMaxArgs bounds the bound values of one query (SQLite allows 32766); a bigger filter
// is not pushed down at all.
const graphlakeMaxArgs = 20000

// graphlakeNarrowing bounds the values of a top-level $in that may let SQLite search that field's
// index (one search per value, then a sort of what they find) instead of walking the sort's index
// (graphlakeOrder says when). Longer lists (a version's thousand datums, say) keep the sort's index.
const graphlakeNarrowing = 500

// graphlakeMaxTerms bounds the conditions joined by one AND or OR: SQLite refuses an expression
// nested 1,000 deep, and a chain of N terms is N deep. Leaving conditions out of an AND, or an OR
// out altogether, only lets more through.
const graphlakeMaxTerms = 64

// graphlake_contains(CAST(text AS BLOB), part) is instr(text, part) > 0 in Go. modernc's SQLite (C
// translated to Go) compares at every position, and hands a function a TEXT argument by copying it
// byte by byte; a BLOB it copies with memmove, and bytes.Contains searches with SIMD. A page of
// assets with a label one in a hundred has (its text tested on ~2,000 rows) came twice as fast.
func init() {
	sqlite3.MustRegisterDeterministicScalarFunction("graphlake_contains", 2,
		func(_ *sqlite3.FunctionContext, args []driver.Value) (driver.Value, error) {
			text, _ := args[0].([]byte)
			part, _ := args[1].(string)

			return bytes.Contains(text, []byte(part)), nil
		})
}

// graphlakeContains is the SQL for "the document's text holds the next bound value".
const graphlakeContains = "graphlake_contains(CAST(" + metadata.DefaultColumn + " AS BLOB), ?)"

// graphlakePlan is how one query reaches SQLite.
type graphlakePlan struct {
	where     string // " WHERE ..." or ""
	args      []any
	indexedBy string // " INDEXED BY ..." or ""
	orderBy   string // " ORDER BY ..." or ""
	sorted    bool   // rows come in the order asked for
	exact     bool   // the WHERE lets through exactly the matching documents (see graphlakeTranslator)
}

// graphlakePlanQuery plans a query with `filter` and, if not empty, MongoDB sort document `sort`.
func graphlakePlanQuery(meta *metadata.Collection, filter, sort *types.Document) graphlakePlan {
	p := graphlakePlan{exact: true}
	scalar := graphlakeScalarFields(meta)
	var pinned, narrowed, present map[string]bool

	where, args, byID, whole := graphlakeIDWhere(filter)
	if byID {
		p.where, p.args, p.exact = where, args, whole
	} else if filter.Len() > 0 {
		t := graphlakeTranslator{scalar: scalar, pinned: map[string]bool{}, narrowed: map[string]bool{},
			present: map[string]bool{}, exact: true}
		conds := t.and(filter, true)
		p.exact = t.exact && len(t.args) <= graphlakeMaxArgs
		pinned, narrowed = t.pinned, t.narrowed

		if len(conds) > 0 && len(t.args) <= graphlakeMaxArgs {
			p.where, p.args = " WHERE "+strings.Join(conds, " AND "), t.args
			if !t.cut {
				present = t.present // the WHERE holds each of their conditions
			}
		}
	}

	if sort.Len() > 0 {
		p.orderBy, p.indexedBy, p.sorted = graphlakeOrder(meta, scalar, pinned, narrowed, present, sort)
		if byID {
			p.indexedBy = "" // a few documents by `_id`: sorted as they are, not by walking another index
		}
	}

	return p
}

// graphlakeCount answers a count of an exact plan with SQL's COUNT, reading no document (a driver's
// count of a list, such as Graphlake's totalCount, decoded every match upstream).
func graphlakeCount(ctx context.Context, db *fsql.DB, meta *metadata.Collection, p graphlakePlan) (*backends.QueryResult, error) {
	var n int64

	q := fmt.Sprintf(`SELECT COUNT(*) FROM %q`, meta.TableName) + p.indexedBy + p.where
	if err := db.QueryRowContext(ctx, q, p.args...).Scan(&n); err != nil {
		return nil, lazyerrors.Error(err)
	}

	return &backends.QueryResult{Iter: newQueryIterator(ctx, nil, false), GraphlakeCounted: true, GraphlakeCount: n}, nil
}

// graphlakeScalarFields returns the fields of the collection's value indexes.
func graphlakeScalarFields(meta *metadata.Collection) map[string]bool {
	fields := map[string]bool{}

	for _, index := range meta.Settings.Indexes {
		if !index.GraphlakeValue {
			continue
		}

		for _, key := range index.Key {
			fields[key.Field] = true
		}
	}

	return fields
}

// graphlakeCheckScalars refuses documents holding an array at (or above) a value field: queries
// compare those fields as single values, so an array there would hide the document from them.
func graphlakeCheckScalars(meta *metadata.Collection, docs []*types.Document) error {
	fields := graphlakeScalarFields(meta)
	for _, doc := range docs {
		if err := graphlakeCheckDocument(fields, doc); err != nil {
			return err
		}
	}

	return nil
}

func graphlakeCheckDocument(fields map[string]bool, doc *types.Document) error {
	for field := range fields {
		var v any = doc

		for _, key := range strings.Split(field, ".") {
			d, ok := v.(*types.Document)
			if !ok {
				break
			}

			if v, _ = d.Get(key); v == nil {
				break
			}

			if _, ok = v.(*types.Array); ok {
				return fmt.Errorf("field %q is covered by an index and must not hold an array in this build", field)
			}
		}
	}

	return nil
}

// graphlakeOrder returns the ORDER BY for `sort`, the INDEXED BY of an index giving rows in that
// order (after a prefix of fields the filter pins to one value), and whether the sort is pushed down.
//
// A partial index (on documents holding some fields: graphlakePartialUsable) is forced only when the
// WHERE holds each of its fields to a value (`present`): SQLite refuses INDEXED BY a partial index
// whose condition the WHERE does not imply ("no query solution"), and a walk of it would miss the
// documents it leaves out. Otherwise SQLite's own planner may still choose it.
func graphlakeOrder(meta *metadata.Collection, scalar, pinned, narrowed, present map[string]bool, sort *types.Document) (string, string, bool) {
	keys := sort.Keys()
	desc := make([]bool, len(keys))
	var terms []string

	for i, key := range keys {
		dir, ok := must.NotFail(sort.Get(key)).(int64)
		if !ok || !scalar[key] {
			return "", "", false
		}

		desc[i] = dir < 0

		// A pinned key is the same in every row kept: ordering by it changes nothing, and SQLite
		// does not see that for an expression, so it would sort every match in a temporary B-tree.
		if pinned[key] {
			continue
		}

		term, _ := metadata.GraphlakeValueExpr(key)
		if desc[i] {
			term += " DESC"
		}

		terms = append(terms, term)
	}

	var chosen string
	best := -1

	for _, index := range meta.Settings.Indexes {
		if !index.GraphlakeValue || !graphlakePartialUsable(index, present) {
			continue
		}

		for prefix := 0; prefix+len(keys) <= len(index.Key); prefix++ {
			if prefix > 0 && !pinned[index.Key[prefix-1].Field] {
				break
			}

			if prefix > best && graphlakeKeysMatch(index.Key[prefix:prefix+len(keys)], keys, desc) {
				best, chosen = prefix, index.Name
			}
		}
	}

	// An index pinned by none of the filter's fields, while another index starts with one of them:
	// walking the whole sort index could read far more than searching the other and sorting what it
	// finds. SQLite weighs that better without being forced; the ORDER BY keeps the order either way.
	// So too for a field held to one of a short list, unless the sort index carries it (then the walk
	// tests it in the index, reading no document it drops, and stops after its page, where a search
	// would sort every match: a few sets' records by `_id`). A lookup of 500 digests in creation
	// order had walked every asset.
	if best == 0 {
		carried := map[string]bool{}

		for _, index := range meta.Settings.Indexes {
			if index.Name == chosen {
				for _, key := range index.Key {
					carried[key.Field] = true
				}
			}
		}

		for _, index := range meta.Settings.Indexes {
			lead := index.Key[0].Field
			if index.GraphlakeValue && (pinned[lead] || narrowed[lead] && !carried[lead]) {
				chosen = ""
			}
		}
	}

	var indexedBy string
	if chosen != "" {
		indexedBy = fmt.Sprintf(" INDEXED BY %q", meta.TableName+"_"+chosen)
	}

	if len(terms) == 0 {
		return "", indexedBy, true
	}

	return " ORDER BY " + strings.Join(terms, ", "), indexedBy, true
}

// graphlakePartialUsable reports whether an index holds every document the WHERE lets through: it is
// not partial, or the WHERE holds each of the fields it is partial on to a non-null value.
func graphlakePartialUsable(index metadata.IndexInfo, present map[string]bool) bool {
	for _, field := range index.GraphlakePartial {
		if !present[field] {
			return false
		}
	}

	return true
}

// graphlakeKeysMatch reports whether index keys are the sort keys, all in the sort's directions or
// all in the opposite ones (SQLite reads an index both ways).
func graphlakeKeysMatch(index []metadata.IndexKeyPair, keys []string, desc []bool) bool {
	same, opposite := true, true

	for i, key := range index {
		if key.Field != keys[i] {
			return false
		}

		same = same && key.Descending == desc[i]
		opposite = opposite && key.Descending != desc[i]
	}

	return same || opposite
}

// graphlakeTranslator turns a MongoDB filter into SQL conditions that every matching document meets.
//
// It also says whether they are met by the matching documents alone (`exact`): so when the whole
// filter is comparisons of value fields with strings, ObjectIDs, dates, booleans or null, given
// one type per value field (as for sorts). A count then needs no document read (graphlakeCount).
// Every other path (numbers, json_each, text tests, anything left out) calls loose.
type graphlakeTranslator struct {
	scalar   map[string]bool
	pinned   map[string]bool // value fields the top level holds equal to one value
	narrowed map[string]bool // value fields the top level holds to one of a short list ($in, graphlakeNarrowing)
	present  map[string]bool // value fields the top level compares with a non-null value: SQLite sees `expr IS NOT NULL` in that
	args     []any
	exact    bool
	cut      bool // some AND was cut short (graphlakeMaxTerms): `present` may name a condition left out
}

// loose records that the conditions may let through documents the filter does not match.
func (t *graphlakeTranslator) loose() {
	t.exact = false
}

// and translates a filter document (its keys are ANDed); conditions it cannot express are left out.
func (t *graphlakeTranslator) and(doc *types.Document, top bool) []string {
	conds := t.conjunction(doc, top)
	if len(conds.terms) > graphlakeMaxTerms {
		t.loose()
		t.cut = true
		t.args = t.args[:conds.marks[graphlakeMaxTerms-1]]
		conds.terms = conds.terms[:graphlakeMaxTerms]
	}

	return conds.terms
}

// graphlakeTerms are conditions to AND, with the number of bound values after each (to drop a tail).
type graphlakeTerms struct {
	terms []string
	marks []int
}

func (c *graphlakeTerms) add(t *graphlakeTranslator, terms ...string) {
	for _, term := range terms {
		c.terms = append(c.terms, term)
		c.marks = append(c.marks, len(t.args))
	}
}

// conjunction translates the keys of a filter document; see and.
func (t *graphlakeTranslator) conjunction(doc *types.Document, top bool) graphlakeTerms {
	var conds graphlakeTerms

	keys, values := doc.Keys(), doc.Values()

	for i, key := range keys {
		switch {
		case key == "$and":
			arr, ok := values[i].(*types.Array)
			if !ok {
				t.loose()
				continue
			}

			for j := 0; j < arr.Len(); j++ {
				if sub, ok := must.NotFail(arr.Get(j)).(*types.Document); ok {
					conds.add(t, t.conjunction(sub, top).terms...)
				} else {
					t.loose()
				}
			}
		case key == "$or":
			// one branch is just its conditions (a keyset filter's first page after a null says that)
			if arr, ok := values[i].(*types.Array); ok && arr.Len() == 1 {
				if sub, ok := must.NotFail(arr.Get(0)).(*types.Document); ok {
					conds.add(t, t.conjunction(sub, top).terms...)
					continue
				}
			}

			if c := t.or(values[i]); c != "" {
				conds.add(t, c)
			} else {
				t.loose()
			}
		case strings.HasPrefix(key, "$"):
			t.loose() // $nor, $expr, $comment, ...: left to the handler
		default:
			conds.add(t, t.field(key, values[i], top)...)
		}
	}

	return conds
}

// or translates $or branches; if any branch narrows nothing, neither does the $or.
func (t *graphlakeTranslator) or(v any) string {
	arr, ok := v.(*types.Array)
	if !ok || arr.Len() == 0 || arr.Len() > graphlakeMaxTerms {
		return ""
	}

	saved := len(t.args)
	branches := make([]string, 0, arr.Len())

	for i := 0; i < arr.Len(); i++ {
		var conds []string
		if doc, ok := must.NotFail(arr.Get(i)).(*types.Document); ok {
			conds = t.and(doc, false)
		}

		if len(conds) == 0 {
			t.args = t.args[:saved]
			return ""
		}

		branches = append(branches, "("+strings.Join(conds, " AND ")+")")
	}

	return "(" + strings.Join(branches, " OR ") + ")"
}

// field translates the condition on one field: a value, or a document of operators.
func (t *graphlakeTranslator) field(field string, v any, top bool) []string {
	path, ok := metadata.GraphlakeJSONPath(field)
	if !ok {
		t.loose()
		return nil
	}

	ops, isDoc := v.(*types.Document)
	if !isDoc {
		c := t.compare(field, path, "=", v)
		t.pin(field, c, v, top)

		return graphlakeNonEmpty(c)
	}

	if ops.Len() == 0 || !strings.HasPrefix(ops.Keys()[0], "$") {
		return graphlakeNonEmpty(t.documentEquals(field, ops))
	}

	var conds []string

	keys, values := ops.Keys(), ops.Values()

	for i, op := range keys {
		var c string

		switch op {
		case "$eq":
			if doc, ok := values[i].(*types.Document); ok {
				c = t.documentEquals(field, doc)
			} else {
				c = t.compare(field, path, "=", values[i])
				t.pin(field, c, values[i], top)
			}
		case "$gt", "$gte", "$lt", "$lte":
			c = t.compare(field, path, graphlakeComparisons[op], values[i])
			t.hold(field, c, top)
		case "$in":
			c = t.in(field, path, values[i])
			if _, null, ok := graphlakeSQLValues(values[i]); ok && !null && !strings.Contains(c, " OR ") {
				t.hold(field, c, top) // `expr IN (...)` or one comparison; an OR of ranges implies nothing to SQLite
			}
			if arr, ok := values[i].(*types.Array); ok && arr.Len() == 1 {
				t.pin(field, c, must.NotFail(arr.Get(0)), top)
			} else if ok && arr.Len() <= graphlakeNarrowing && c != "" && top && t.scalar[field] {
				t.narrowed[field] = true
			}
		case "$all":
			if arr, ok := values[i].(*types.Array); ok {
				for j := 0; j < arr.Len(); j++ {
					element := must.NotFail(arr.Get(j))
					if doc, ok := element.(*types.Document); ok {
						conds = append(conds, graphlakeNonEmpty(t.documentEquals(field, doc))...)
					} else {
						conds = append(conds, graphlakeNonEmpty(t.compare(field, path, "=", element))...)
					}
				}
			}
		case "$elemMatch":
			c = t.elemMatch(path, values[i])
			t.loose()
		default:
			t.loose() // $ne, $nin, $exists, $regex, ...: left to the handler
		}

		if c != "" {
			conds = append(conds, c)
		} else if op != "$all" {
			t.loose()
		}
	}

	return conds
}

// pin records a top-level `field = v` on a value field: every row the handler keeps has that one SQL
// value there (NULL for null), so an index can serve it as an equality prefix before the sort keys,
// and the field need not be sorted by. A number's widened range pins nothing.
func (t *graphlakeTranslator) pin(field, cond string, v any, top bool) {
	value, ok := graphlakeSQLValue(v)
	if ok && cond != "" && top && t.scalar[field] && !value.inexact {
		t.pinned[field] = true
	}

	if ok && !value.null {
		t.hold(field, cond, top)
	}
}

// hold records a top-level comparison of a value field with a non-null value (`expr = ?`, `expr > ?`,
// `expr BETWEEN ? AND ?`, `expr IN (...)`), from which SQLite infers `expr IS NOT NULL`: a partial
// index on that field may then be forced (graphlakeOrder).
func (t *graphlakeTranslator) hold(field, cond string, top bool) {
	if cond != "" && top && t.scalar[field] {
		t.present[field] = true
	}
}

// documentEquals translates equality with a whole document (the attribute pattern's {k, v}
// elements): a document holding an equal one holds its JSON text, as sjson writes nested documents.
// No JSON is parsed for it; the handler compares the documents themselves.
func (t *graphlakeTranslator) documentEquals(field string, doc *types.Document) string {
	t.loose()

	if t.scalar[field] || !graphlakeTextSafe(doc) {
		return ""
	}

	text, err := sjson.MarshalSingleValue(doc)
	if err != nil {
		return ""
	}

	t.args = append(t.args, string(text))

	return graphlakeContains
}

// graphlakeTextSafe reports whether every value equal to v is written with v's own text: not so for
// a zero (-0.0 equals 0), a number past 2^53 (a double's shortest form) or a type without a text.
func graphlakeTextSafe(v any) bool {
	switch v := v.(type) {
	case *types.Document:
		for _, value := range v.Values() {
			if !graphlakeTextSafe(value) {
				return false
			}
		}

		return true
	case *types.Array:
		for i := 0; i < v.Len(); i++ {
			if !graphlakeTextSafe(must.NotFail(v.Get(i))) {
				return false
			}
		}

		return true
	case string, bool, types.ObjectID, time.Time, types.NullType:
		return true
	case int32:
		return v != 0
	case int64:
		return v != 0 && v < 1<<53 && v > -(1<<53)
	case float64:
		return v != 0 && math.Abs(v) < 1<<53
	default:
		return false
	}
}

var graphlakeComparisons = map[string]string{"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}

// compare translates `field <op> v` for a scalar v ("=" also matches an array holding v).
func (t *graphlakeTranslator) compare(field, path, op string, v any) string {
	value, ok := graphlakeSQLValue(v)
	if !ok {
		t.loose()
		return ""
	}

	if t.scalar[field] {
		expr := metadata.DefaultColumn + "->>'" + path + "'"
		if value.null {
			if op != "=" {
				t.loose()
				return ""
			}

			return expr + " IS NULL"
		}

		return t.bounded(expr, op, value)
	}

	t.loose()

	if value.null {
		return "" // null also matches a missing field, which json_each cannot see
	}

	var texts []any
	if op == "=" {
		texts = []any{value.text}
	}

	return t.each(path, texts, func() string { return t.bounded("value", op, value) })
}

// each returns "some element of (or the value at) path meets cond", for a field that may hold an
// array. json_each parses the whole document, so when the condition is an equality the document's
// text must first contain one of `texts` (the JSON the document would hold: a cheap substring test
// that passes every match); CASE makes SQLite test that first. The guard is built last so that
// bound values keep the order of their placeholders.
func (t *graphlakeTranslator) each(path string, texts []any, cond func() string) string {
	if len(texts) > graphlakeMaxTerms/4 {
		texts = nil // a long list: its tests would cost more than the parse they save
	}

	var pre []string
	for _, text := range texts {
		if text == "" { // no text to rely on for one value: no test at all
			t.args = t.args[:len(t.args)-len(pre)]
			pre = nil

			break
		}

		pre = append(pre, graphlakeContains)
		t.args = append(t.args, text)
	}

	exists := fmt.Sprintf("EXISTS (SELECT 1 FROM json_each(%s, '%s') WHERE %s)", metadata.DefaultColumn, path, cond())
	if len(pre) > 0 {
		exists = "CASE WHEN " + strings.Join(pre, " OR ") + " THEN " + exists + " ELSE 0 END"
	}

	return graphlakeGuarded(path, exists)
}

// bounded compares `expr` with a value. SQLite's reading of a stored double's decimal text may
// differ from Go's in the last bits, so a double is compared with a range a few units in the
// last place wider: it lets more through, never fewer.
func (t *graphlakeTranslator) bounded(expr, op string, value graphlakeValue) string {
	if value.inexact {
		t.loose()
	}

	if !value.inexact {
		t.args = append(t.args, value.arg)
		return expr + " " + op + " ?"
	}

	f := value.arg.(float64)
	lo, hi := graphlakeWiden(f, -1), graphlakeWiden(f, +1)

	switch op {
	case ">", ">=":
		t.args = append(t.args, lo)
		return expr + " >= ?"
	case "<", "<=":
		t.args = append(t.args, hi)
		return expr + " <= ?"
	default:
		t.args = append(t.args, lo, hi)
		return expr + " BETWEEN ? AND ?"
	}
}

// in translates `field $in [v, ...]`.
func (t *graphlakeTranslator) in(field, path string, v any) string {
	values, null, ok := graphlakeSQLValues(v)
	if !ok {
		t.loose()
		return ""
	}

	if len(values) == 1 && !null {
		return t.compare(field, path, "=", must.NotFail(v.(*types.Array).Get(0)))
	}

	if t.scalar[field] {
		expr := metadata.DefaultColumn + "->>'" + path + "'"
		parts := graphlakeNonEmpty(t.oneOf(expr, values))

		if null {
			parts = append(parts, expr+" IS NULL")
		}

		return "(" + strings.Join(parts, " OR ") + ")"
	}

	t.loose()

	if null {
		return ""
	}

	texts := make([]any, len(values))
	for i, value := range values {
		texts[i] = value.text
	}

	return t.each(path, texts, func() string { return t.oneOf("value", values) })
}

// oneOf returns "expr equals one of values": IN for exact ones, a range for each double.
func (t *graphlakeTranslator) oneOf(expr string, values []graphlakeValue) string {
	var parts []string
	var exact []any
	var numbers []graphlakeValue

	for _, value := range values {
		if value.inexact {
			numbers = append(numbers, value)
		} else {
			exact = append(exact, value.arg)
		}
	}

	if len(numbers) > graphlakeMaxTerms/4 { // one range from the least to the greatest
		lo, hi := numbers[0].arg.(float64), numbers[0].arg.(float64)
		for _, n := range numbers[1:] {
			lo, hi = math.Min(lo, n.arg.(float64)), math.Max(hi, n.arg.(float64))
		}

		t.loose()
		t.args = append(t.args, graphlakeWiden(lo, -1), graphlakeWiden(hi, +1))
		parts = append(parts, expr+" BETWEEN ? AND ?")
	} else {
		for _, value := range numbers {
			parts = append(parts, t.bounded(expr, "=", value))
		}
	}

	if len(exact) > 0 {
		parts = append(parts, expr+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(exact)), ", ")+")")
		t.args = append(t.args, exact...)
	}

	if len(parts) == 0 {
		return ""
	}

	return "(" + strings.Join(parts, " OR ") + ")"
}

// graphlakeSQLValues returns the values of a $in list (without null), whether it holds null, and
// whether it can be pushed down at all.
func graphlakeSQLValues(v any) ([]graphlakeValue, bool, bool) {
	arr, ok := v.(*types.Array)
	if !ok || arr.Len() == 0 || arr.Len() > graphlakeMaxArgs {
		return nil, false, false
	}

	values := make([]graphlakeValue, 0, arr.Len())
	var null bool

	for i := 0; i < arr.Len(); i++ {
		value, ok := graphlakeSQLValue(must.NotFail(arr.Get(i)))
		if !ok {
			return nil, false, false
		}

		if value.null {
			null = true
			continue
		}

		values = append(values, value)
	}

	return values, null, true
}

// elemMatch translates `$elemMatch` of value operators: some element meets all of them.
func (t *graphlakeTranslator) elemMatch(path string, v any) string {
	ops, ok := v.(*types.Document)
	if !ok {
		return ""
	}

	type term struct {
		op     string
		values []graphlakeValue
	}

	var terms []term
	var texts []any

	keys, values := ops.Keys(), ops.Values()

	for i, op := range keys {
		switch op {
		case "$eq", "$gt", "$gte", "$lt", "$lte":
			value, ok := graphlakeSQLValue(values[i])
			if !ok || value.null {
				continue
			}

			terms = append(terms, term{op, []graphlakeValue{value}})
			if op == "$eq" && texts == nil {
				texts = []any{value.text}
			}
		case "$in":
			list, null, ok := graphlakeSQLValues(values[i])
			if !ok || null || len(list) == 0 {
				continue
			}

			terms = append(terms, term{op, list})
			if texts == nil {
				for _, value := range list {
					texts = append(texts, value.text)
				}
			}
		default:
			if !strings.HasPrefix(op, "$") {
				return "" // conditions on fields of element documents: left to the handler
			}
		}
	}

	if len(terms) == 0 {
		return ""
	}

	// One json_each per operator, ANDed: FerretDB's handler (which decides) tests each operator over
	// the whole array, so one element need not meet them all; this lets through both readings.
	conds := make([]string, 0, len(terms))
	for i, term := range terms {
		var termTexts []any
		if i == 0 {
			termTexts = texts
		}

		conds = append(conds, t.each(path, termTexts, func() string {
			switch term.op {
			case "$in":
				return t.oneOf("value", term.values)
			case "$eq":
				return t.bounded("value", "=", term.values[0])
			default:
				return t.bounded("value", graphlakeComparisons[term.op], term.values[0])
			}
		}))
	}

	return strings.Join(conds, " AND ")
}

// graphlakeGuarded lets a condition on a nested path through whenever a field above it is an
// array: MongoDB looks into arrays of documents along a path, json_each does not.
func graphlakeGuarded(path, cond string) string {
	keys := strings.Split(strings.TrimPrefix(path, "$."), ".")
	if len(keys) == 1 {
		return cond
	}

	parts := []string{cond}
	prefix := "$"

	for _, key := range keys[:len(keys)-1] {
		prefix += "." + key
		parts = append(parts, fmt.Sprintf("json_type(%s, '%s') = 'array'", metadata.DefaultColumn, prefix))
	}

	return "(" + strings.Join(parts, " OR ") + ")"
}

// graphlakeValue is a BSON scalar as SQLite sees it in a document (see GraphlakeValueExpr).
type graphlakeValue struct {
	arg     any
	null    bool
	inexact bool   // a number: compare with a slightly wider range
	text    string // a text every document holding the value contains (see each)
}

func graphlakeSQLValue(v any) (graphlakeValue, bool) {
	var value graphlakeValue

	switch v := v.(type) {
	case string:
		value = graphlakeValue{arg: v}
	case types.ObjectID:
		value = graphlakeValue{arg: hex.EncodeToString(v[:])}
	case int32:
		// a number field may hold doubles too, which compare with an int only through the widened range
		value = graphlakeValue{arg: float64(v), inexact: true}
	case int64:
		value = graphlakeValue{arg: float64(v), inexact: true}
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return value, false
		}

		value = graphlakeValue{arg: v, inexact: true}
	case bool:
		value = graphlakeValue{arg: int64(0)}
		if v {
			value.arg = int64(1)
		}
	case time.Time:
		value = graphlakeValue{arg: v.UnixMilli()}
	case types.NullType:
		return graphlakeValue{null: true}, true
	default:
		return value, false
	}

	value.text = graphlakeText(v)

	return value, true
}

// graphlakeText returns a text that the JSON of every document holding v (or a value equal to it)
// contains, as sjson writes it (encoding/json), or "" if there is none to rely on. An equal number
// has the same digits whatever its BSON type (5, int64 5 and 5.0 are all "5") up to 2^53, past
// which a double is written in its shortest form; -x holds the digits of x (so -0 finds 0).
func graphlakeText(v any) string {
	var number float64

	switch v := v.(type) {
	case string, bool:
		return string(must.NotFail(json.Marshal(v)))
	case types.ObjectID:
		return `"` + hex.EncodeToString(v[:]) + `"`
	case time.Time:
		number = float64(v.UnixMilli())
	case int32:
		number = float64(v)
	case int64:
		number = float64(v)
	case float64:
		number = v
	default:
		return ""
	}

	if math.Abs(number) >= 1<<53 {
		return ""
	}

	return string(must.NotFail(json.Marshal(math.Abs(number))))
}

// graphlakeWiden moves f four units in the last place towards dir (past any rounding of an int64
// to a double, and any misreading of a stored one).
func graphlakeWiden(f float64, dir int) float64 {
	to := math.Inf(dir)
	for range 4 {
		f = math.Nextafter(f, to)
	}

	return f
}

func graphlakeNonEmpty(c string) []string {
	if c == "" {
		return nil
	}

	return []string{c}
}

// graphlakeIDWhere pushes down a top-level {_id: <string|ObjectID>} or {_id: {$in: [<string|ObjectID>, ...]}}
// to the `_id_` index, which keeps upstream's expression (metadata.IDColumn, its JSON text), whatever
// else the filter holds: a few documents by id beat any other index, and SQLite, given the other
// conditions as well, would scan the table instead (`{_id: {$in: ids}, status: "DELETED"}` did).
// An empty `$in` reads nothing. FerretDB applies the whole filter to what the index finds; `whole`
// says the `_id` condition is all of it (only then does a count need no document).
func graphlakeIDWhere(filter *types.Document) (where string, args []any, byID, whole bool) {
	v, err := filter.Get("_id")
	if err != nil {
		return "", nil, false, false
	}

	whole = filter.Len() == 1

	switch v := v.(type) {
	case string, types.ObjectID:
		return fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn), []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}, true, whole
	case *types.Document:
		if v.Len() != 1 {
			return "", nil, false, false
		}

		in, _ := v.Get("$in")

		values, ok := in.(*types.Array)
		if !ok || values.Len() > graphlakeMaxArgs {
			return "", nil, false, false
		}

		// Matches nothing, whatever else the filter says. A bound NULL, which equals nothing, rather
		// than a constant: SQLite would fold that and plan (never run) a scan of the table.
		if values.Len() == 0 {
			return fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn), []any{nil}, true, whole
		}

		args = make([]any, 0, values.Len())

		for i := 0; i < values.Len(); i++ {
			value := must.NotFail(values.Get(i))
			switch value.(type) {
			case string, types.ObjectID:
				args = append(args, string(must.NotFail(sjson.MarshalSingleValue(value))))
			default:
				return "", nil, false, false
			}
		}

		return fmt.Sprintf(` WHERE %s IN (?%s)`, metadata.IDColumn, strings.Repeat(", ?", len(args)-1)), args, true, whole
	}

	return "", nil, false, false
}
