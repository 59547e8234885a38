// Graphlake's build: the one-pass decoder (graphlake_sjson.go) against upstream's, which it must
// either match exactly or hand the document to. Run by scripts/build-services.sh before it builds,
// with upstream's own tests of this package (which now go through the one-pass decoder too).

package sjson

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/internal/types"
)

// A generated value of every type Marshal writes, nested up to `depth` documents and arrays deep.
func graphlakeValue(rng *rand.Rand, depth int) any {
	strings := []string{"", "plain", `say "hi"`, `back\slash`, "tab\tnew\nline", "<b>&amp;</b>", "été",
		"emoji 🧪", "\u2028", "\x01ctl", "bad \xff utf-8", `{"json":[1,2.5,"x"]}`}
	kinds := 13
	if depth <= 0 {
		kinds = 11 // scalars only
	}

	switch rng.Intn(kinds) {
	case 0:
		floats := []float64{0, math.Copysign(0, -1), 1.5, -2.25e-7, 1e300, 5e-324, math.MaxFloat64, 42, rng.NormFloat64() * 1e6}
		return floats[rng.Intn(len(floats))]
	case 1:
		return strings[rng.Intn(len(strings))]
	case 2:
		b := make([]byte, rng.Intn(40))
		rng.Read(b)
		return types.Binary{B: b, Subtype: types.BinarySubtype(rng.Intn(6))}
	case 3:
		var id types.ObjectID
		rng.Read(id[:])
		return id
	case 4:
		return rng.Intn(2) == 0
	case 5:
		return time.UnixMilli(rng.Int63n(1<<45) - 1<<44)
	case 6:
		return types.Null
	case 7:
		return types.Regex{Pattern: strings[rng.Intn(len(strings))], Options: []string{"", "i", "imsx"}[rng.Intn(3)]}
	case 8:
		return []int32{0, -1, math.MaxInt32, math.MinInt32, rng.Int31()}[rng.Intn(5)]
	case 9:
		return types.Timestamp([]uint64{0, 1, math.MaxUint64, rng.Uint64()}[rng.Intn(4)])
	case 10:
		return []int64{0, -1, math.MaxInt64, math.MinInt64, rng.Int63()}[rng.Intn(5)]
	case 11:
		return graphlakeDocument(rng, depth-1, true)
	default:
		arr := types.MakeArray(0)
		for n := rng.Intn(5); n > 0; n-- {
			arr.Append(graphlakeValue(rng, depth-1))
		}

		return arr
	}
}

// Nested documents may have any key; Marshal writes a stored document's own keys unescaped, and
// FerretDB refuses those a JSON string cannot hold as they are, so those stay plain.
func graphlakeDocument(rng *rand.Rand, depth int, nested bool) *types.Document {
	keys := []string{"_id", "a", "set_id", "$weird", "dotted.key", "été", "k9"}
	if nested {
		keys = append(keys, `quote"d`, "<tag>", "new\nline")
	}

	doc := types.MakeDocument(0)
	for n := rng.Intn(7); n > 0; n-- {
		doc.Set(keys[rng.Intn(len(keys))], graphlakeValue(rng, depth))
	}

	return doc
}

// upstream's answer, a panic counted as an error
func graphlakeUpstream(data []byte) (*types.Document, error) {
	return graphlakeSafely(upstreamUnmarshal, data)
}

func graphlakeSafely(decode func([]byte) (*types.Document, error), data []byte) (doc *types.Document, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()

	return decode(data)
}

func TestGraphlakeUnmarshalMatchesUpstream(t *testing.T) {
	rng := rand.New(rand.NewSource(1))

	for i := 0; i < 3000; i++ {
		doc := graphlakeDocument(rng, 3, false)

		data, err := Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}

		want, err := graphlakeUpstream(data)
		if err != nil {
			t.Fatalf("upstream cannot read what Marshal wrote: %v\n%s", err, data)
		}

		got, ok := graphlakeUnmarshal(data)
		if !ok {
			t.Fatalf("the one-pass decoder gave up on what Marshal wrote (it must take the fast path):\n%s", data)
		}

		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded differently from upstream:\n%s\ngot  %#v\nwant %#v", data, got, want)
		}

		// Bytes it was not written for: anything it accepts, upstream reads the same.
		graphlakeCheckAgainstUpstream(t, data[:rng.Intn(len(data))])
		flipped := bytes.Clone(data)
		flips := `{}[]",:0 -.e\n1tfu`
		flipped[rng.Intn(len(flipped))] = flips[rng.Intn(len(flips))]
		graphlakeCheckAgainstUpstream(t, flipped)
	}
}

func TestGraphlakeUnmarshalLeavesTheUnexpectedToUpstream(t *testing.T) {
	id := `{"$s":{"p":{"_id":{"t":"objectId"},"n":{"t":"int"}},"$k":["_id","n"]},`
	for _, data := range []string{
		id + `"_id":"000102030405060708090a0b","n":7}`, // as written: taken
		id + `"n":7,"_id":"000102030405060708090a0b"}`, // another order: upstream reads it
		id + ` "_id" : "000102030405060708090a0b" , "n" : 7 } `,
		id + `"_id":"000102030405060708090a0b","n":7,"x":1}`, // a key the schema lacks
		id + `"_id":"000102030405060708090a0b"}`,             // a key missing
		id + `"_id":"000102030405060708090a0b","n":2147483648}`,
		id + `"_id":"000102030405060708090a0b","n":7.0}`,
		id + `"_id":"000102030405060708090a0b","n":"7"}`,
		id + `"_id":"0001","n":7}`,
		id + `"_id":"000102030405060708090a0b","n":null}`,
		id + `"_id":"000102030405060708090a0b","n":7}x`,
		id + `"_id":"000102030405060708090a0b","n":-}`,
		`{"$s":{"p":{"a":{"t":"int"}},"$k":["a","a"]},"a":1,"a":2}`, // a repeated key
		`{"$s":{"p":{"d":{"t":"double"}},"$k":["d"]},"d":1e400}`,
		`{"$s":{"p":{"d":{"t":"double"}},"$k":["d"]},"d":Infinity}`,
		`{"$s":{"p":{"d":{"t":"double"}},"$k":["d"]},"d":01}`,
		`{"$s":{"p":{"s":{"t":"string"}},"$k":["s"]},"s":"\ud83e\uddea \ud800"}`,
		`{"$s":{"p":{"o":{"t":"object","$s":{"p":{},"$k":[]}}},"$k":["o"]},"o":{}}`,
		`{"$s":{"p":{"o":{"t":"object"}},"$k":["o"]},"o":{}}`,
		`{"$s":{"p":{"a":{"t":"array","i":[]}},"$k":["a"]},"a":[]}`,
		`{"$s":{"p":{"a":{"t":"array"}},"$k":["a"]},"a":[]}`,
		`{"$s":{"p":{"a":{"t":"array","i":[{"t":"int"}]}},"$k":["a"]},"a":[1,2]}`,
		`{"$s":{"p":{"x":{"t":"weird"}},"$k":["x"]},"x":1}`,
		`{"$s":{"p":{},"$k":[],"extra":1}}`,
		`{"$s":{}}`,
		`{"a":1,"$s":{"p":{"a":{"t":"int"}},"$k":["a"]}}`,
		`[]`, ``, `null`,
	} {
		graphlakeCheckAgainstUpstream(t, []byte(data))
	}

	if _, ok := graphlakeUnmarshal([]byte(id + `"_id":"000102030405060708090a0b","n":7}`)); !ok {
		t.Fatal("the canonical form must take the fast path")
	}
}

// graphlakeCheckAgainstUpstream: Unmarshal answers as upstream does, and the one-pass decoder
// accepts nothing upstream refuses or reads otherwise.
func graphlakeCheckAgainstUpstream(t *testing.T, data []byte) {
	t.Helper()

	want, wantErr := graphlakeUpstream(data)

	if got, ok := graphlakeUnmarshal(data); ok && (wantErr != nil || !reflect.DeepEqual(got, want)) {
		t.Fatalf("the one-pass decoder accepted %q: %#v; upstream: %#v, %v", data, got, want, wantErr)
	}

	got, err := graphlakeSafely(Unmarshal, data)
	if (err != nil) != (wantErr != nil) || (err == nil && !reflect.DeepEqual(got, want)) {
		t.Fatalf("Unmarshal(%q) = %#v, %v; upstream %#v, %v", data, got, err, want, wantErr)
	}
}
