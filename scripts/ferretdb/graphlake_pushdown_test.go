// Graphlake's build: a partial index is forced (INDEXED BY) only for a WHERE that implies its
// condition (graphlakeOrder), against SQLite itself. Run by scripts/build-services.sh before it builds.

package sqlite

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

func TestGraphlakePartialIndexes(t *testing.T) {
	key := func(field string, desc bool) metadata.IndexKeyPair { return metadata.IndexKeyPair{Field: field, Descending: desc} }
	meta := &metadata.Collection{Name: "assets", TableName: "assets_1", Settings: metadata.Settings{Indexes: []metadata.IndexInfo{
		{Name: "created", Key: []metadata.IndexKeyPair{key("created_at", true), key("_id", true)}, GraphlakeValue: true},
		{Name: "owner", Key: []metadata.IndexKeyPair{key("owner.user_id", false), key("created_at", true), key("_id", true)},
			GraphlakeValue: true, GraphlakePartial: []string{"owner.user_id"}},
		{Name: "unpinned", Key: []metadata.IndexKeyPair{key("unpinned_at", false), key("_id", false)},
			GraphlakeValue: true, GraphlakePartial: []string{"unpinned_at"}},
		{Name: "uri", Key: []metadata.IndexKeyPair{key("uri", false)}, Unique: true, GraphlakePartial: []string{"uri"}},
	}}}

	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one in-memory database

	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %s", q, err)
		}
	}

	exec(fmt.Sprintf(`CREATE TABLE %q (%s TEXT)`, meta.TableName, metadata.DefaultColumn))
	for _, index := range meta.Settings.Indexes {
		columns := make([]string, len(index.Key))
		for i, k := range index.Key {
			columns[i] = metadata.GraphlakeFieldExpr(index, k.Field)
			if k.Descending {
				columns[i] += " DESC"
			}
		}

		unique := ""
		if index.Unique {
			unique = "UNIQUE "
		}

		exec(fmt.Sprintf(`CREATE %sINDEX %q ON %q (%s)`, unique, meta.TableName+"_"+index.Name, meta.TableName,
			strings.Join(columns, ", ")) + metadata.GraphlakePartialWhere(index))
	}

	// 30 documents; a third have an owner, a fifth an unpinned time, a tenth a URI.
	for i := 0; i < 30; i++ {
		doc := fmt.Sprintf(`{"_id":"%02d","created_at":%d`, i, i*1000)
		if i%3 == 0 {
			doc += fmt.Sprintf(`,"owner":{"user_id":"u%d"}`, i%2)
		}
		if i%5 == 0 {
			doc += fmt.Sprintf(`,"unpinned_at":%d`, 30000-i*1000)
		}
		if i%10 == 0 {
			doc += fmt.Sprintf(`,"uri":"s3://b/%d"`, i)
		}
		exec(fmt.Sprintf(`INSERT INTO %q VALUES (?)`, meta.TableName), doc+"}")
	}

	// Unique among the documents holding the field; any number without it.
	if _, err := db.Exec(fmt.Sprintf(`INSERT INTO %q VALUES (?)`, meta.TableName), `{"_id":"dup","uri":"s3://b/0"}`); err == nil {
		t.Fatal("a second document with the same uri was taken")
	}

	// Why the rule: SQLite refuses a partial index its WHERE does not imply.
	if _, err := db.Query(fmt.Sprintf(`SELECT 1 FROM %q INDEXED BY %q`, meta.TableName, meta.TableName+"_unpinned")); err == nil ||
		!strings.Contains(err.Error(), "no query solution") {
		t.Fatalf("expected no query solution, got %v", err)
	}

	doc := func(pairs ...any) *types.Document { return must.NotFail(types.NewDocument(pairs...)) }
	at := func(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

	for _, c := range []struct {
		filter, sort *types.Document
		forced       string // the index forced, or ""
		rows         int
	}{
		{doc(), doc("unpinned_at", int64(1), "_id", int64(1)), "", 30},
		{doc(), doc("owner.user_id", int64(1), "created_at", int64(-1), "_id", int64(-1)), "", 30},
		{doc("unpinned_at", doc("$lt", at(26000))), doc("unpinned_at", int64(1), "_id", int64(1)), "unpinned", 5},
		{doc("unpinned_at", doc("$ne", types.Null, "$lt", at(26000))), doc("unpinned_at", int64(1), "_id", int64(1)), "unpinned", 5},
		{doc("owner.user_id", "u0"), doc("created_at", int64(-1), "_id", int64(-1)), "owner", 5},
		{doc("owner.user_id", doc("$in", must.NotFail(types.NewArray("u0", "u1")))), doc("owner.user_id", int64(1), "created_at", int64(-1), "_id", int64(-1)), "owner", 10},
		{doc("owner.user_id", types.Null), doc("created_at", int64(-1), "_id", int64(-1)), "", 20},
		{doc("owner.user_id", doc("$in", must.NotFail(types.NewArray("u0", types.Null)))), doc("owner.user_id", int64(1), "created_at", int64(-1), "_id", int64(-1)), "", 25},
		{doc("$or", must.NotFail(types.NewArray(doc("owner.user_id", "u0"), doc("unpinned_at", at(0))))), doc("created_at", int64(-1), "_id", int64(-1)), "created", 5},
		{doc("created_at", doc("$gte", at(0))), doc("created_at", int64(-1), "_id", int64(-1)), "created", 30},
	} {
		p := graphlakePlanQuery(meta, c.filter, c.sort)
		want := ""
		if c.forced != "" {
			want = fmt.Sprintf(" INDEXED BY %q", meta.TableName+"_"+c.forced)
		}

		if p.indexedBy != want || !p.sorted {
			t.Errorf("%v sorted by %v: forced %q (sorted %v), want %q", c.filter, c.sort, p.indexedBy, p.sorted, want)
		}

		q := fmt.Sprintf(`SELECT %s FROM %q`, metadata.DefaultColumn, meta.TableName) + p.indexedBy + p.where + p.orderBy
		rows, err := db.Query(q, p.args...)
		if err != nil {
			t.Fatalf("%s: %s", q, err)
		}

		var n int
		for rows.Next() {
			n++
		}

		if err = rows.Err(); err != nil {
			t.Fatal(err)
		}

		rows.Close()

		if n != c.rows {
			t.Errorf("%s: %d rows, want %d", q, n, c.rows)
		}
	}
}
