// Graphlake's build of FerretDB v1.24: a driver's count of documents answered by SQLite's COUNT.
// Copied into internal/handler by scripts/build-services.sh.

package handler

import (
	"math"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/iterator"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// graphlakeCountShape recognizes how drivers count documents (PyMongo's count_documents):
// [{$match: F}, {$group: {_id: C, N: {$sum: 1}}}] with a constant C, and returns C and N.
// Upstream reads and decodes every matching document to count it: seconds at 10,000.
func graphlakeCountShape(pipeline []any) (any, string, bool) {
	if len(pipeline) != 2 {
		return nil, "", false
	}

	match, ok := pipeline[0].(*types.Document)
	if !ok || match.Len() != 1 || match.Keys()[0] != "$match" {
		return nil, "", false
	}

	group, ok := pipeline[1].(*types.Document)
	if !ok || group.Len() != 1 || group.Keys()[0] != "$group" {
		return nil, "", false
	}

	spec, ok := must.NotFail(group.Get("$group")).(*types.Document)
	if !ok || spec.Len() != 2 {
		return nil, "", false
	}

	id, err := spec.Get("_id")
	if err != nil {
		return nil, "", false
	}

	switch id.(type) {
	case int32, int64, float64, bool, types.NullType:
	default: // a string may be a field path, a document an expression
		return nil, "", false
	}

	for _, name := range spec.Keys() {
		if name == "_id" {
			continue
		}

		sum, ok := must.NotFail(spec.Get(name)).(*types.Document)
		if !ok || sum.Len() != 1 || sum.Keys()[0] != "$sum" {
			return nil, "", false
		}

		switch one := must.NotFail(sum.Get("$sum")).(type) {
		case int32:
			ok = one == 1
		case int64:
			ok = one == 1
		default:
			ok = false
		}

		if !ok {
			return nil, "", false
		}

		return id, name, true
	}

	return nil, "", false
}

// graphlakeCountResult is the pipeline's answer for n matching documents: one group, or none.
func graphlakeCountResult(id any, name string, n int64) types.DocumentsIterator {
	var docs []*types.Document

	if n > 0 {
		var count any = n
		if n <= math.MaxInt32 {
			count = int32(n) // as $sum of int32 ones gives
		}

		docs = append(docs, must.NotFail(types.NewDocument("_id", id, name, count)))
	}

	return iterator.Values(iterator.ForSlice(docs))
}
