// Graphlake's build of FerretDB: a stored document decoded in one pass (patch.py, step 4).
//
// Upstream's Unmarshal (kept as upstreamUnmarshal) decodes every document, and again every field
// of it, through its own encoding/json Decoder into maps of json.RawMessage, then each value
// through another Decoder: profiled on a find of 2,000 annotation records, that was more than half
// of FerretDB's CPU, and most of the rest was the garbage collector freeing what it allocated.
//
// This decoder reads the bytes Marshal wrote once, left to right, guided by the schema, and builds
// the same *types.Document. The schema ("$s") is the same for most documents of a collection, so
// each distinct one is parsed once (by upstream's code) and kept. Anything it does not expect
// (another key order, an escape it does not handle, a type mismatch, malformed JSON) makes it give
// up, and upstream's Unmarshal decodes the document instead: so it either returns exactly what
// upstream returns, or leaves the answer, and any error, to upstream (graphlake_sjson_test.go
// checks both against upstream on generated documents of every type).

package sjson

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/FerretDB/FerretDB/internal/types"
)

// Unmarshal decodes a document Marshal wrote.
func Unmarshal(data []byte) (*types.Document, error) {
	if doc, ok := graphlakeUnmarshal(data); ok {
		return doc, nil
	}

	return upstreamUnmarshal(data)
}

// Parsed schemas by their JSON text. A collection's documents share a few shapes; a bound keeps
// a stream of distinct ones (documents of free-form JSON) from growing it without end.
const graphlakeSchemasKept = 4096

var (
	graphlakeSchemasMu sync.RWMutex
	graphlakeSchemas   = make(map[string]*schema)
)

func graphlakeSchema(raw []byte) (*schema, bool) {
	graphlakeSchemasMu.RLock()
	sch, ok := graphlakeSchemas[string(raw)] // no copy of raw for a lookup
	graphlakeSchemasMu.RUnlock()

	if ok {
		return sch, true
	}

	// As upstreamUnmarshal parses it. The parsed schema is only ever read afterwards.
	sch = new(schema)
	r := bytes.NewReader(raw)
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()

	if err := dec.Decode(sch); err != nil || checkConsumed(dec, r) != nil {
		return nil, false
	}

	graphlakeSchemasMu.Lock()
	if len(graphlakeSchemas) >= graphlakeSchemasKept {
		graphlakeSchemas = make(map[string]*schema)
	}
	graphlakeSchemas[string(raw)] = sch
	graphlakeSchemasMu.Unlock()

	return sch, true
}

// graphlakeReader walks a document's bytes; every method reports false on anything unexpected.
type graphlakeReader struct {
	data []byte
	pos  int
}

func graphlakeUnmarshal(data []byte) (*types.Document, bool) {
	r := graphlakeReader{data: data}

	if !r.consume('{') {
		return nil, false
	}

	// Marshal writes the schema first, then the fields in the schema's order.
	key, ok := r.key()
	if !ok || key != "$s" {
		return nil, false
	}

	start := r.skipSpace()
	if !r.skipValue() {
		return nil, false
	}

	sch, ok := graphlakeSchema(data[start:r.pos])
	if !ok {
		return nil, false
	}

	doc, ok := r.fields(sch, true)
	if !ok || r.pos != len(data) { // upstream refuses even white space after the document
		return nil, false
	}

	return doc, true
}

// fields reads the rest of an object whose '{' (and, at the top, "$s" and its value) is read:
// exactly the schema's keys, in its order.
func (r *graphlakeReader) fields(sch *schema, afterSchema bool) (*types.Document, bool) {
	doc := types.MakeDocument(len(sch.Keys))

	for i, want := range sch.Keys {
		if (i > 0 || afterSchema) && !r.consume(',') {
			return nil, false
		}

		key, ok := r.key()
		if !ok || key != want {
			return nil, false
		}

		v, ok := r.value(sch.Properties[key])
		if !ok {
			return nil, false
		}

		doc.Set(key, v)
	}

	// A repeated key in the schema would have been set twice: upstream refuses that.
	if !r.consume('}') || doc.Len() != len(sch.Keys) {
		return nil, false
	}

	return doc, true
}

// value reads one value of the given schema, as unmarshalSingleValue does.
func (r *graphlakeReader) value(sch *elem) (any, bool) {
	start := r.skipSpace()
	if bytes.HasPrefix(r.data[start:], []byte("null")) {
		r.pos += 4
		return types.Null, true
	}

	if sch == nil {
		return nil, false
	}

	switch sch.Type {
	case elemTypeObject:
		if sch.Schema == nil || !r.consume('{') {
			return nil, false
		}

		if r.peek() == '}' { // upstream's empty document, whatever the schema says
			r.pos++
			return new(types.Document), true
		}

		return r.fields(sch.Schema, false)

	case elemTypeArray:
		if sch.Items == nil || !r.consume('[') {
			return nil, false
		}

		arr := types.MakeArray(len(sch.Items))
		for i, item := range sch.Items {
			if i > 0 && !r.consume(',') {
				return nil, false
			}

			v, ok := r.value(item)
			if !ok {
				return nil, false
			}

			arr.Append(v)
		}

		if !r.consume(']') {
			return nil, false
		}

		return arr, true

	case elemTypeDouble:
		n, ok := r.number()
		if !ok {
			return nil, false
		}

		f, err := strconv.ParseFloat(string(n), 64)

		return f, err == nil

	case elemTypeString:
		return r.string()

	case elemTypeBinData:
		start := r.skipSpace()
		if sch.Subtype == nil || !r.skipString() {
			return nil, false
		}

		var b []byte // base64, as encoding/json decodes a []byte
		if json.Unmarshal(r.data[start:r.pos], &b) != nil {
			return nil, false
		}

		return types.Binary{B: b, Subtype: *sch.Subtype}, true

	case elemTypeObjectID:
		s, ok := r.string()
		if !ok || len(s) != 2*len(types.ObjectID{}) {
			return nil, false
		}

		var id types.ObjectID
		if _, err := hex.Decode(id[:], []byte(s)); err != nil {
			return nil, false
		}

		return id, true

	case elemTypeBool:
		switch {
		case bytes.HasPrefix(r.data[start:], []byte("true")):
			r.pos += 4
			return true, true
		case bytes.HasPrefix(r.data[start:], []byte("false")):
			r.pos += 5
			return false, true
		}

		return nil, false

	case elemTypeDate:
		ms, ok := r.integer(64)

		return time.UnixMilli(ms), ok

	case elemTypeRegex:
		if sch.Options == nil {
			return nil, false
		}

		s, ok := r.string()

		return types.Regex{Pattern: s, Options: *sch.Options}, ok

	case elemTypeInt:
		i, ok := r.integer(32)

		return int32(i), ok

	case elemTypeTimestamp:
		n, ok := r.number()
		if !ok {
			return nil, false
		}

		t, err := strconv.ParseUint(string(n), 10, 64)

		return types.Timestamp(t), err == nil

	case elemTypeLong:
		i, ok := r.integer(64)

		return i, ok
	}

	return nil, false // elemTypeNull with a value that is not null, or a type upstream does not know
}

// integer reads a number as encoding/json decodes one into an integer of `bits` bits.
func (r *graphlakeReader) integer(bits int) (int64, bool) {
	n, ok := r.number()
	if !ok {
		return 0, false
	}

	i, err := strconv.ParseInt(string(n), 10, bits)

	return i, err == nil
}

func (r *graphlakeReader) skipSpace() int {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return r.pos
		}
	}

	return r.pos
}

func (r *graphlakeReader) peek() byte {
	if r.skipSpace() < len(r.data) {
		return r.data[r.pos]
	}

	return 0
}

func (r *graphlakeReader) consume(c byte) bool {
	if r.peek() != c {
		return false
	}

	r.pos++

	return true
}

// key reads an object's key and its ':'.
func (r *graphlakeReader) key() (string, bool) {
	key, ok := r.string()
	if !ok || !r.consume(':') {
		return "", false
	}

	return key, true
}

// string reads a JSON string as encoding/json decodes it: as is when it has no escape and is
// valid UTF-8 (nearly always), else through encoding/json itself.
func (r *graphlakeReader) string() (string, bool) {
	start := r.skipSpace()
	if !r.skipString() {
		return "", false
	}

	inner := r.data[start+1 : r.pos-1]
	plain := utf8.Valid(inner)

	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}

	if plain {
		return string(inner), true
	}

	var s string
	if json.Unmarshal(r.data[start:r.pos], &s) != nil {
		return "", false
	}

	return s, true
}

// skipString moves past a string (its quotes included), escapes and all, without decoding it.
func (r *graphlakeReader) skipString() bool {
	if r.peek() != '"' {
		return false
	}

	for i := r.pos + 1; i < len(r.data); i++ {
		switch r.data[i] {
		case '\\':
			i++
		case '"':
			r.pos = i + 1
			return true
		}
	}

	return false
}

// number reads a number's text, strictly by JSON's grammar (strconv alone also takes "Inf",
// "0x1p-2" and the like). Callers convert it with string(n) in the strconv call itself, which Go
// does without a heap copy.
func (r *graphlakeReader) number() ([]byte, bool) {
	start := r.skipSpace()
	i := start
	digits := func() bool {
		from := i
		for i < len(r.data) && r.data[i] >= '0' && r.data[i] <= '9' {
			i++
		}

		return i > from
	}

	if i < len(r.data) && r.data[i] == '-' {
		i++
	}

	if i < len(r.data) && r.data[i] == '0' {
		i++
	} else if !digits() {
		return nil, false
	}

	if i < len(r.data) && r.data[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
	}

	if i < len(r.data) && (r.data[i] == 'e' || r.data[i] == 'E') {
		i++
		if i < len(r.data) && (r.data[i] == '+' || r.data[i] == '-') {
			i++
		}

		if !digits() {
			return nil, false
		}
	}

	r.pos = i

	return r.data[start:i], true
}

// skipValue moves past any JSON value (the schema, read as a whole).
func (r *graphlakeReader) skipValue() bool {
	switch r.peek() {
	case '"':
		return r.skipString()
	case '{', '[':
		depth := 0
		for r.pos < len(r.data) {
			switch r.data[r.pos] {
			case '"':
				if !r.skipString() {
					return false
				}

				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					r.pos++
					return true
				}
			}
			r.pos++
		}

		return false
	}

	return false // the schema is an object; anything else is left to upstream
}
