// Graphlake's build: the one-pass encoder (graphlake_sjson_marshal.go) writes upstream's bytes.
// Run by scripts/build-services.sh before it builds.

package sjson

import (
	"bytes"
	"math"
	"math/rand"
	"testing"

	"github.com/FerretDB/FerretDB/internal/types"
)

func TestGraphlakeMarshalWritesUpstreamsBytes(t *testing.T) {
	rng := rand.New(rand.NewSource(2))

	docs := []*types.Document{types.MakeDocument(0)}
	for _, f := range []float64{1e21, 1e20, 1e-6, 1e-7, 123456789.125, -1.5e-300, math.SmallestNonzeroFloat64,
		math.MaxFloat64, math.Copysign(0, -1), 0.1, 100, 1e100, 2.5e-9} {
		doc := types.MakeDocument(1)
		doc.Set("f", f)
		docs = append(docs, doc)
	}

	for i := 0; i < 3000; i++ {
		docs = append(docs, graphlakeDocument(rng, 3, false))
	}

	for _, doc := range docs {
		want, err := upstreamMarshal(doc)
		if err != nil {
			t.Fatal(err)
		}

		got, ok := graphlakeMarshal(doc)
		if !ok {
			t.Fatalf("the one-pass encoder gave up on %v", doc)
		}

		if !bytes.Equal(got, want) {
			t.Fatalf("wrote\n%s\nupstream wrote\n%s", got, want)
		}
	}
}

func TestGraphlakeMarshalLeavesNaNAndInfinitiesToUpstream(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		inner := types.MakeDocument(1)
		inner.Set("f", f)
		doc := types.MakeDocument(1)
		doc.Set("d", inner)

		if _, ok := graphlakeMarshal(doc); ok {
			t.Fatalf("the one-pass encoder wrote %v", f)
		}

		if _, err := Marshal(doc); err == nil {
			t.Fatalf("Marshal accepted %v, which upstream refuses", f)
		}
	}
}
