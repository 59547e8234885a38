// Graphlake's build of FerretDB: update statements write the documents they change together
// (scripts/ferretdb/patch.py, step 8).

package common

import (
	"context"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/types"
)

// graphlakeUpdateBatch is how many changed documents one transaction writes at most.
const graphlakeUpdateBatch = 1000

// GraphlakeUpdates holds documents update statements changed, not written yet. Upstream wrote each
// in a transaction of its own: an update_many of a thousand documents, or a bulk write of a thousand
// statements naming one document each, was a thousand commits, each appending the same index pages
// to SQLite's WAL again (and compiling the same UPDATE again).
type GraphlakeUpdates struct {
	c    backends.Collection
	docs []*types.Document
	ids  map[any]struct{} // the documents the statements still held here name
}

type graphlakeUpdatesKey struct{}

// WithGraphlakeUpdates returns a context under which UpdateDocument leaves what it changes to u,
// for its caller to Flush, instead of writing it before it returns.
func WithGraphlakeUpdates(ctx context.Context, u *GraphlakeUpdates) context.Context {
	return context.WithValue(ctx, graphlakeUpdatesKey{}, u)
}

func graphlakeUpdatesFrom(ctx context.Context) *GraphlakeUpdates {
	u, _ := ctx.Value(graphlakeUpdatesKey{}).(*GraphlakeUpdates)
	return u
}

// Takes reports whether a statement with this filter may join the documents held here: it names
// its documents by _id (an ObjectID or a string, or $in a list of them), none named by a statement
// held here. Such a statement reads and changes only those documents, so it cannot see or miss what
// the others changed. Other conditions beside _id (`status: {$ne: "DELETED"}`) only narrow those
// documents further: the filter's top-level conditions all hold at once, so none can reach a
// document the _id condition does not name. If it may, its ids are remembered.
func (u *GraphlakeUpdates) Takes(filter *types.Document) bool {
	if filter == nil {
		return false
	}

	v, err := filter.Get("_id")
	if err != nil {
		return false
	}

	var ids []any

	if d, ok := v.(*types.Document); ok {
		if d.Len() != 1 {
			return false
		}

		in, err := d.Get("$in")
		if err != nil {
			return false
		}

		list, ok := in.(*types.Array)
		if !ok {
			return false
		}

		for i := 0; i < list.Len(); i++ {
			id, err := list.Get(i)
			if err != nil {
				return false
			}

			ids = append(ids, id)
		}
	} else {
		ids = []any{v}
	}

	for _, id := range ids {
		switch id.(type) {
		case types.ObjectID, string:
		default:
			return false
		}

		if _, seen := u.ids[id]; seen {
			return false
		}
	}

	if u.ids == nil {
		u.ids = make(map[any]struct{})
	}

	for _, id := range ids {
		u.ids[id] = struct{}{}
	}

	return true
}

// add holds a changed document of collection c, writing what is held once there are enough.
func (u *GraphlakeUpdates) add(ctx context.Context, c backends.Collection, doc *types.Document) error {
	u.c = c
	if u.docs = append(u.docs, doc); len(u.docs) >= graphlakeUpdateBatch {
		return u.write(ctx)
	}

	return nil
}

// Flush writes what is held, in one transaction, and forgets the ids named so far: what follows
// reads it from the collection.
func (u *GraphlakeUpdates) Flush(ctx context.Context) error {
	u.ids = nil
	return u.write(ctx)
}

func (u *GraphlakeUpdates) write(ctx context.Context) error {
	if len(u.docs) == 0 {
		return nil
	}

	docs := u.docs
	u.docs = nil

	_, err := u.c.UpdateAll(ctx, &backends.UpdateAllParams{Docs: docs})

	return err
}
