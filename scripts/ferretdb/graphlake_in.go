// Graphlake's build of FerretDB: `$in` over a list of ObjectIDs decided by a set (patch.py, step 10).
//
// Upstream compares a document's value with each element of the list in turn. Building a dataset
// version reads a set's annotation records with `datum_id: {$in: [the 1,000 datums of a batch]}`,
// so each record read cost a thousand comparisons: two fifths of FerretDB's CPU in those reads.
// A list of at least graphlakeInMinimum ObjectIDs and nothing else gets a set, made once per list
// (a command's filter is decoded once, then evaluated against every document it reads), and an
// ObjectID value is looked up in it. Any other value or list takes upstream's loop.

package common

import (
	"sync"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

const (
	graphlakeInMinimum = 16 // shorter lists: the loop is as quick as making a set
	graphlakeInKept    = 64 // lists whose sets are kept; past that all are forgotten (and made again if asked)
)

// The sets of the lists of the filters being evaluated, by list. A list is never changed once
// decoded, and a kept set keeps its list alive, so a key never stands for another list.
var graphlakeInSets = struct {
	sync.Mutex
	sets map[*types.Array]map[types.ObjectID]struct{}
}{sets: map[*types.Array]map[types.ObjectID]struct{}{}}

// graphlakeIn says whether value is in list; decided is false when upstream's loop must say.
func graphlakeIn(value any, list *types.Array) (found, decided bool) {
	id, ok := value.(types.ObjectID)
	if !ok || list.Len() < graphlakeInMinimum {
		return false, false
	}

	set := graphlakeInSet(list)
	if set == nil {
		return false, false
	}

	_, found = set[id]

	return found, true
}

// graphlakeInSet returns the set of list's ObjectIDs, or nil if it holds anything else.
func graphlakeInSet(list *types.Array) map[types.ObjectID]struct{} {
	graphlakeInSets.Lock()
	defer graphlakeInSets.Unlock()

	if set, ok := graphlakeInSets.sets[list]; ok {
		return set
	}

	set := make(map[types.ObjectID]struct{}, list.Len())

	for i := 0; i < list.Len(); i++ {
		id, ok := must.NotFail(list.Get(i)).(types.ObjectID)
		if !ok {
			set = nil // remembered too: a mixed list is not looked through again

			break
		}

		set[id] = struct{}{}
	}

	if len(graphlakeInSets.sets) >= graphlakeInKept {
		clear(graphlakeInSets.sets)
	}

	graphlakeInSets.sets[list] = set

	return set
}
