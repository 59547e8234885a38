// Graphlake's build of FerretDB: a document encoded for storage in one pass (patch.py, step 6).
//
// Upstream's Marshal (kept as upstreamMarshal) builds the schema and every value in bytes.Buffers
// of their own and encodes each key, string and number through encoding/json: a quarter of
// FerretDB's CPU on an insert of 1,000 annotation records, with the garbage it leaves. This writes
// the very same bytes into one slice: the common strings as they are, numbers as encoding/json
// formats them, and anything else (a string to escape, binary data) through encoding/json itself.
// What it does not know (a NaN, a type upstream does not either) goes to upstreamMarshal, for its
// error. graphlake_sjson_marshal_test.go checks the bytes against upstream's.

package sjson

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/FerretDB/FerretDB/internal/types"
)

// Marshal encodes a document for storage.
func Marshal(d *types.Document) ([]byte, error) {
	if d == nil {
		panic("v is nil")
	}

	if b, ok := graphlakeMarshal(d); ok {
		return b, nil
	}

	return upstreamMarshal(d)
}

type graphlakeWriter struct {
	b  []byte
	ok bool
}

func graphlakeMarshal(d *types.Document) ([]byte, bool) {
	w := graphlakeWriter{b: make([]byte, 0, 1024), ok: true}

	w.b = append(w.b, `{"$s":`...)
	w.schema(d)

	// As upstream: the keys of the stored document itself are written as they are.
	keys, values := d.Keys(), d.Values()
	for i, key := range keys {
		w.b = append(w.b, `,"`...)
		w.b = append(w.b, key...)
		w.b = append(w.b, `":`...)
		w.value(values[i])
	}

	w.b = append(w.b, '}')

	return w.b, w.ok
}

// schema writes what marshalSchemaForDoc does.
func (w *graphlakeWriter) schema(d *types.Document) {
	keys := d.Keys()
	if len(keys) == 0 {
		w.b = append(w.b, "{}"...)
		return
	}

	w.b = append(w.b, `{"p":{`...)
	w.members(d, w.elem)
	w.b = append(w.b, `},"$k":[`...)

	for i, key := range keys {
		if i > 0 {
			w.b = append(w.b, ',')
		}

		w.string(key)
	}

	w.b = append(w.b, "]}"...)
}

// elem writes what marshalElemForSingleValue does.
func (w *graphlakeWriter) elem(v any) {
	switch v := v.(type) {
	case *types.Document:
		w.b = append(w.b, `{"t":"object","$s":`...)
		w.schema(v)
		w.b = append(w.b, '}')
	case *types.Array:
		w.b = append(w.b, `{"t":"array","i":[`...)
		w.items(v, w.elem)
		w.b = append(w.b, "]}"...)
	case float64:
		w.b = append(w.b, `{"t":"double"}`...)
	case string:
		w.b = append(w.b, `{"t":"string"}`...)
	case types.Binary:
		w.b = append(w.b, `{"t":"binData","s":`...)
		w.json(v.Subtype)
		w.b = append(w.b, '}')
	case types.ObjectID:
		w.b = append(w.b, `{"t":"objectId"}`...)
	case bool:
		w.b = append(w.b, `{"t":"bool"}`...)
	case time.Time:
		w.b = append(w.b, `{"t":"date"}`...)
	case types.NullType:
		w.b = append(w.b, `{"t":"null"}`...)
	case types.Regex:
		w.b = append(w.b, `{"t":"regex","o":`...)
		w.string(v.Options)
		w.b = append(w.b, '}')
	case int32:
		w.b = append(w.b, `{"t":"int"}`...)
	case types.Timestamp:
		w.b = append(w.b, `{"t":"timestamp"}`...)
	case int64:
		w.b = append(w.b, `{"t":"long"}`...)
	default:
		w.ok = false // upstream panics, naming the type
	}
}

// value writes what MarshalSingleValue does.
func (w *graphlakeWriter) value(v any) {
	switch v := v.(type) {
	case *types.Document:
		w.b = append(w.b, '{')
		w.members(v, w.value)
		w.b = append(w.b, '}')
	case *types.Array:
		w.b = append(w.b, '[')
		w.items(v, w.value)
		w.b = append(w.b, ']')
	case float64:
		w.float(v)
	case string:
		w.string(v)
	case types.Binary:
		w.json(v.B)
	case types.ObjectID:
		w.b = append(w.b, '"')
		w.b = hex.AppendEncode(w.b, v[:])
		w.b = append(w.b, '"')
	case bool:
		w.b = strconv.AppendBool(w.b, v)
	case time.Time:
		w.b = strconv.AppendInt(w.b, v.UnixMilli(), 10)
	case types.NullType:
		w.b = append(w.b, "null"...)
	case types.Regex:
		w.string(v.Pattern)
	case int32:
		w.b = strconv.AppendInt(w.b, int64(v), 10)
	case types.Timestamp:
		w.b = strconv.AppendUint(w.b, uint64(v), 10)
	case int64:
		w.b = strconv.AppendInt(w.b, v, 10)
	default:
		w.ok = false
	}
}

// members writes each field of d as `"key":` and what `each` writes of its value, comma-separated
// (the schema's properties, and a nested document's values).
func (w *graphlakeWriter) members(d *types.Document, each func(any)) {
	for i, key := range d.Keys() {
		if i > 0 {
			w.b = append(w.b, ',')
		}

		w.string(key)
		w.b = append(w.b, ':')

		v, err := d.Get(key)
		if err != nil {
			w.ok = false
			return
		}

		each(v)
	}
}

// items writes what `each` writes of each element of a, comma-separated.
func (w *graphlakeWriter) items(a *types.Array, each func(any)) {
	for i := 0; i < a.Len(); i++ {
		if i > 0 {
			w.b = append(w.b, ',')
		}

		v, err := a.Get(i)
		if err != nil {
			w.ok = false
			return
		}

		each(v)
	}
}

// string writes a JSON string as encoding/json does: as it is when no byte needs escaping (it also
// escapes <, > and & for HTML), else through encoding/json.
func (w *graphlakeWriter) string(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			w.json(s)
			return
		}
	}

	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

// float writes a double as encoding/json does (its floatEncoder); NaN and infinities are left to
// upstream, which refuses them.
func (w *graphlakeWriter) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.ok = false
		return
	}

	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}

	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)

	if format == 'e' { // e-09 -> e-9, as encoding/json writes it
		n := len(w.b)
		if n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
}

func (w *graphlakeWriter) json(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.ok = false
		return
	}

	w.b = append(w.b, b...)
}
