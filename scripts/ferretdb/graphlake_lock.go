// Graphlake's build of FerretDB: commands that read documents and then write what they read hold
// those documents meanwhile (scripts/ferretdb/patch.py, step 13).

package handler

import (
	"hash/fnv"
	"sort"
	"sync"

	"github.com/FerretDB/FerretDB/internal/handler/common"
	"github.com/FerretDB/FerretDB/internal/types"
)

// graphlakeStripes is how many locks a collection's documents are spread over by their _id.
const graphlakeStripes = 256

// graphlakeCollectionLock is one collection's: shared by commands that name their documents by _id
// (each also holding the stripes of its ids), exclusive for any other.
type graphlakeCollectionLock struct {
	all     sync.RWMutex
	stripes [graphlakeStripes]sync.Mutex
}

// graphlakeLocks holds a *graphlakeCollectionLock per "database.collection".
var graphlakeLocks sync.Map

// graphlakeHold waits until no other update, findAndModify or delete can touch the documents this
// one may (those its filters name by _id; all of the collection's when a filter names none), and
// returns what ends the hold. Each of those commands reads the documents its filter matches, then
// writes them (changed, or deleted by _id) with nothing between holding others off: upstream let two
// conditional updates sent at once both match one document, and lost one of two increments. MongoDB
// makes each document's match and write one step; here writers of the same documents take turns.
// Most of Graphlake's writes name their documents by _id, so writers of different documents still
// read side by side: one lock per collection cost 8 connections updating their own documents 60%
// more time. Inserts do not read first and do not wait.
//
// Why not compare-and-set on the row: the document's stored text is not kept past decoding, and a
// delete's or an upsert's match would need the same again; one lock covers all three.
func graphlakeHold(db, collection string, filters []*types.Document) func() {
	v, ok := graphlakeLocks.Load(db + "." + collection)
	if !ok {
		v, _ = graphlakeLocks.LoadOrStore(db+"."+collection, new(graphlakeCollectionLock))
	}

	lock := v.(*graphlakeCollectionLock)

	stripes, named := graphlakeStripesOf(filters)
	if !named {
		lock.all.Lock()
		return lock.all.Unlock
	}

	lock.all.RLock()

	for _, s := range stripes { // in ascending order: two commands never wait on each other's stripes
		lock.stripes[s].Lock()
	}

	return func() {
		for _, s := range stripes {
			lock.stripes[s].Unlock()
		}

		lock.all.RUnlock()
	}
}

// graphlakeStripesOf returns the stripes of the documents the filters name by _id (an ObjectID, a
// string or an integer, or $in a list of them), ascending and each once; false if any filter names
// none so (it may match any document of the collection).
func graphlakeStripesOf(filters []*types.Document) ([]int, bool) {
	seen := make(map[int]struct{})

	for _, filter := range filters {
		if filter == nil {
			return nil, false
		}

		v, err := filter.Get("_id")
		if err != nil {
			return nil, false
		}

		ids := []any{v}

		if d, isDoc := v.(*types.Document); isDoc {
			in, err := d.Get("$in")
			list, isList := in.(*types.Array)

			if err != nil || d.Len() != 1 || !isList {
				return nil, false
			}

			ids = ids[:0]

			for i := 0; i < list.Len(); i++ {
				id, _ := list.Get(i)
				ids = append(ids, id)
			}
		}

		for _, id := range ids {
			stripe, ok := graphlakeStripe(id)
			if !ok {
				return nil, false
			}

			seen[stripe] = struct{}{}
		}
	}

	stripes := make([]int, 0, len(seen))
	for s := range seen {
		stripes = append(stripes, s)
	}

	sort.Ints(stripes)

	return stripes, true
}

// graphlakeStripe returns the stripe of one _id value; false for a kind of value not striped here.
func graphlakeStripe(id any) (int, bool) {
	h := fnv.New32a()

	switch id := id.(type) {
	case types.ObjectID:
		h.Write(id[:])
	case string:
		h.Write([]byte("s" + id))
	case int32:
		return int(uint32(id) % graphlakeStripes), true
	case int64:
		return int(uint64(id) % graphlakeStripes), true
	default:
		return 0, false
	}

	return int(h.Sum32() % graphlakeStripes), true
}

// graphlakeUpdateFilters returns the filters of an update command's statements. An upsert that
// names no _id may insert any document: it holds the whole collection, as its nil filter says.
func graphlakeUpdateFilters(updates []common.Update) []*types.Document {
	filters := make([]*types.Document, len(updates))
	for i, u := range updates {
		filters[i] = u.Filter
	}

	return filters
}

// graphlakeDeleteFilters returns the filters of a delete command's statements.
func graphlakeDeleteFilters(deletes []common.Delete) []*types.Document {
	filters := make([]*types.Document, len(deletes))
	for i, d := range deletes {
		filters[i] = d.Filter
	}

	return filters
}
