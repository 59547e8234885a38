// Graphlake's build of FerretDB: commands that read documents and then write what they read hold
// their collection meanwhile (scripts/ferretdb/patch.py, step 13).

package handler

import (
	"context"
	"sync"
)

// graphlakeLocks holds a lock (a channel with room for one) per "database.collection".
var graphlakeLocks sync.Map

// graphlakeHold waits until no other update, findAndModify or delete of the collection is running,
// and returns what ends this one's hold. Each of those commands reads the documents its filter
// matches, then writes them (changed, or deleted by _id) with nothing between holding others off:
// upstream let two conditional updates sent at once both match one document, and lost one of two
// increments. MongoDB makes each document's match and write one step; here the collection's
// writers take turns, which SQLite, with its single writer, mostly made them do anyway. Inserts do
// not read first and do not wait. A caller that gives up (its connection closed) stops waiting.
//
// Why not compare-and-set on the row: the document's stored text is not kept past decoding, and a
// delete's or an upsert's match would need the same again; one lock covers all three.
func graphlakeHold(ctx context.Context, db, collection string) (func(), error) {
	key := db + "." + collection

	v, ok := graphlakeLocks.Load(key)
	if !ok {
		v, _ = graphlakeLocks.LoadOrStore(key, make(chan struct{}, 1))
	}

	lock := v.(chan struct{})

	select {
	case lock <- struct{}{}:
		return func() { <-lock }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
