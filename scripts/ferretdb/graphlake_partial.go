// Graphlake's build of FerretDB v1.24: partial indexes on the existence of fields.
// Copied into internal/handler by scripts/build-services.sh.
//
// Upstream refuses `partialFilterExpression`. An index entry costs every insert, even for a document
// without the indexed field (it is indexed as NULL), and many of Graphlake's documents lack the field
// of some index (an asset without an owner, an event without a key). This build takes the one form
// `{<field>: {$exists: true}, ...}`, which the SQLite backend makes a partial index
// (`WHERE <the index's expression for field> IS NOT NULL AND ...`: metadata.GraphlakePartialWhere).
// SQLite uses it only for a query whose WHERE implies that condition; the pushdown never forces it
// otherwise (graphlakeOrder).

package handler

import (
	"fmt"
	"strings"

	"github.com/FerretDB/FerretDB/internal/handler/handlererrors"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// graphlakePartialFields returns the fields of a partialFilterExpression of the form
// {<field>: {$exists: true}, ...}, or a NotImplemented error for any other.
func graphlakePartialFields(command string, v any) ([]string, error) {
	refuse := func(why string) error {
		return handlererrors.NewCommandErrorMsgWithArgument(
			handlererrors.ErrNotImplemented,
			fmt.Sprintf("partialFilterExpression %s is not implemented (%s): this build takes only "+
				"{<field>: {$exists: true}, ...}", types.FormatAnyValue(v), why),
			command,
		)
	}

	doc, ok := v.(*types.Document)
	if !ok || doc.Len() == 0 {
		return nil, refuse("not a non-empty document")
	}

	fields := make([]string, 0, doc.Len())

	for _, field := range doc.Keys() {
		for _, key := range strings.Split(field, ".") {
			if key == "" || strings.HasPrefix(key, "$") {
				return nil, refuse(fmt.Sprintf("%q is not a field", field))
			}
		}

		cond, ok := must.NotFail(doc.Get(field)).(*types.Document)
		if !ok || cond.Len() != 1 || cond.Keys()[0] != "$exists" {
			return nil, refuse(fmt.Sprintf("the condition on %q is not {$exists: true}", field))
		}

		if exists, ok := must.NotFail(cond.Get("$exists")).(bool); !ok || !exists {
			return nil, refuse(fmt.Sprintf("the condition on %q is not {$exists: true}", field))
		}

		fields = append(fields, field)
	}

	return fields, nil
}

// graphlakePartialDocument is the partialFilterExpression of fields, as it was given.
func graphlakePartialDocument(fields []string) *types.Document {
	doc := new(types.Document)
	for _, field := range fields {
		doc.Set(field, must.NotFail(types.NewDocument("$exists", true)))
	}

	return doc
}
