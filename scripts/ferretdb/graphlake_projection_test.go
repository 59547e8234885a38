// Graphlake's build: the copy-free projections (graphlake_projection.go) against ProjectDocument.
// Run by scripts/build-services.sh before it builds.

package common

import (
	"bytes"
	"math/rand"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
)

var graphlakeFields = []string{"_id", "kind", "status", "name", "size", "meta", "tags", "owner", "when"}

func graphlakeStoredDocument(rng *rand.Rand, idFirst bool) *types.Document {
	doc := types.MakeDocument(0)
	if idFirst {
		doc.Set("_id", types.NewObjectID())
	}

	for _, key := range graphlakeFields[1:] {
		if rng.Intn(4) == 0 {
			continue // absent from this document
		}

		switch rng.Intn(6) {
		case 0:
			doc.Set(key, "text")
		case 1:
			doc.Set(key, int64(rng.Intn(1000)))
		case 2:
			doc.Set(key, types.Null)
		case 3:
			inner := types.MakeDocument(0)
			inner.Set("a", float64(rng.Intn(9)))
			inner.Set("b", types.MakeArray(0))
			doc.Set(key, inner)
		case 4:
			arr := types.MakeArray(0)
			arr.Append("x", int32(2))
			doc.Set(key, arr)
		default:
			doc.Set(key, time.UnixMilli(rng.Int63n(1<<41)))
		}
	}

	if !idFirst {
		doc.Set("_id", types.NewObjectID())
	}

	doc.SetRecordID(rng.Int63())

	return doc
}

func graphlakeProjection(rng *rand.Rand) *types.Document {
	projection := types.MakeDocument(0)
	for _, key := range append([]string{"missing", "meta.a", "tags.$"}, graphlakeFields...) {
		if rng.Intn(3) != 0 {
			continue
		}

		switch {
		case key == "_id":
			projection.Set(key, []any{true, false, int32(0), int32(1), "new"}[rng.Intn(5)])
		case rng.Intn(10) == 0:
			projection.Set(key, false)
		case rng.Intn(10) == 0:
			projection.Set(key, "a new value")
		default:
			projection.Set(key, []any{true, int32(1), float64(1), int64(7)}[rng.Intn(4)])
		}
	}

	return projection
}

func graphlakeSame(t *testing.T, a, b *types.Document) bool {
	t.Helper()

	x, err := sjson.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}

	y, err := sjson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}

	return bytes.Equal(x, y) && a.RecordID() == b.RecordID()
}

func TestGraphlakeProjectMatchesProjectDocument(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	taken := 0

	for i := 0; i < 5000; i++ {
		doc := graphlakeStoredDocument(rng, rng.Intn(20) != 0)

		projection := graphlakeProjection(rng)
		if i%7 == 0 {
			projection = types.MakeDocument(0)
		}

		validated, inclusion, err := ValidateProjection(projection)
		if err != nil {
			continue // refused before any document is projected
		}

		want, wantErr := ProjectDocument(doc.DeepCopy(), validated, nil, inclusion)

		got, ok := graphlakeProject(doc, validated, inclusion)
		if !ok {
			continue
		}

		taken++

		if wantErr != nil || !graphlakeSame(t, got, want) {
			t.Fatalf("projection %v of %v: got %v, ProjectDocument %v, %v", projection, doc, got, want, wantErr)
		}
	}

	if taken < 1000 {
		t.Fatalf("only %d of the generated projections took the copy-free path", taken)
	}
}
