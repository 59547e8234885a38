// Graphlake's build: `$in` decided by a set (graphlake_in.go) gives upstream's answers.
// Run by scripts/build-services.sh before it builds.

package common

import (
	"math/rand"
	"testing"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// graphlakeInUpstream is upstream's answer for a scalar value: some element compares equal.
func graphlakeInUpstream(value any, list *types.Array) bool {
	for i := 0; i < list.Len(); i++ {
		if types.Compare(value, must.NotFail(list.Get(i))) == types.Equal {
			return true
		}
	}

	return false
}

func TestGraphlakeIn(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ids := make([]types.ObjectID, 200)

	for i := range ids {
		ids[i] = types.NewObjectID()
	}

	for round := 0; round < 300; round++ {
		size := rng.Intn(60)
		list := types.MakeArray(size)

		for i := 0; i < size; i++ {
			list.Append(ids[rng.Intn(len(ids))])
		}

		if round%5 == 0 && size > 0 {
			list.Append("not an id") // a mixed list: upstream's loop decides
		}

		values := []any{ids[rng.Intn(len(ids))], types.NewObjectID(), types.Null, "text", int32(3)}
		for _, value := range values {
			want := graphlakeInUpstream(value, list)

			doc := must.NotFail(types.NewDocument("_id", types.NewObjectID(), "v", value))
			filter := must.NotFail(types.NewDocument("v", must.NotFail(types.NewDocument("$in", list))))

			got, err := FilterDocument(doc, filter)
			if err != nil {
				t.Fatal(err)
			}

			if got != want {
				t.Fatalf("round %d: %v in a list of %d: got %v, upstream %v", round, value, list.Len(), got, want)
			}

			if found, decided := graphlakeIn(value, list); decided && found != want {
				t.Fatalf("round %d: graphlakeIn(%v) = %v, upstream %v", round, value, found, want)
			}
		}
	}

	// An array value is still matched element by element, by upstream's loop.
	list := types.MakeArray(0)
	for i := 0; i < 20; i++ {
		list.Append(ids[i])
	}

	doc := must.NotFail(types.NewDocument("_id", types.NewObjectID(), "v", must.NotFail(types.NewArray(ids[150], ids[3]))))
	filter := must.NotFail(types.NewDocument("v", must.NotFail(types.NewDocument("$in", list))))

	if got := must.NotFail(FilterDocument(doc, filter)); !got {
		t.Fatal("an array holding a listed id did not match")
	}
}
