"""Turns FerretDB v1.24.2's module source into Graphlake's build of it (run by build-services.sh).

    python3 patch.py MODULE_DIR BUILD_NUMBER

Upstream's v1 line is final (v2 dropped SQLite), so the changes live here. Each edit names the exact
upstream text it replaces and stops the build if that text is not there once.

1. `_id` lookups use the `_id_` index. It is created on `_ferretdb_sjson->"_id"`, but queries said
   `_ferretdb_sjson->'$._id'`: the same value, yet SQLite uses an expression index only for the same
   expression, so every lookup by `_id` scanned the table. `{_id: {$in: [...]}}` (how DataLoaders
   fetch) becomes `WHERE _id IN (...)` on that index too.
2. Filters and sorts reach SQLite (graphlake_pushdown.go explains how): other indexes hold the
   fields' SQL values (graphlake_expr.go), a query's WHERE is narrowed through them, and a sort on
   indexed fields is an ORDER BY that the handler no longer repeats in memory, so a page reads
   about a page of rows; a driver's count of a filter SQL decides alone is a COUNT (graphlake_count.go).
3. `distinct` accepts `maxTimeMS`, which drivers send with every command under a client-side
   timeout (Graphlake's server sets one); upstream refused the field, failing every distinct.
   It is not enforced: the driver closes its connection at the deadline, which cancels the query.
4. A stored document is decoded in one pass (graphlake_sjson.go says why and how), upstream's
   decoder kept for whatever that pass does not expect.
5. A find without a projection, or with an inclusion of top-level fields, takes the fields from the
   document instead of copying it (graphlake_projection.go).
6. A document is encoded for storage in one pass, into upstream's very bytes (graphlake_sjson_marshal.go).
7. SQLite's memcmp and memcpy are the Go runtime's vectorized ones. modernc.org/libc (SQLite's C
   library, translated to Go) ships musl's byte-at-a-time loops for them on Linux. SQLite's JSON
   functions compare each document's whole text with the ones they parsed last (json_extract's
   cache, checked on every index expression of every row written): a tenth of FerretDB's CPU in a
   COCO import went to that loop alone. The module is copied into the build and replaced there
   (graphlake_libc_test.go checks the two against the C semantics).
8. Update statements write the documents they change in one transaction per thousand, where
   upstream wrote each in a transaction of its own: `update_many` of a thousand assets, or a bulk
   write of a thousand statements that each name one asset by `_id`, was a thousand commits (a
   thousand WAL appends of the same index pages), most of the cost of filing an import's uploads.
   Within a statement, its documents are distinct and read before any is written; across the
   statements of one command, only those naming their documents by `_id` (other conditions beside
   it narrow them further), none named twice, are written together (graphlake_update.go), so the
   outcome is the same. An error still stops the
   command, as upstream, and undoes what was held. Each statement's query is closed when it is done
   (upstream kept all open to the command's end: a bulk write of a few thousand single-document
   updates ran out of connections and hung). The documents written together share one compiled
   UPDATE: compiling it (it maintains every index of the collection) cost as much as running it.
9. A reply is not decoded again before it is sent. Upstream checks every message for NaNs (SQLite's
   JSON cannot hold them) by decoding it whole, its replies too: a find's answer was encoded, then
   decoded and walked (a twentieth of FerretDB's CPU building a version). What comes in is still
   checked; what goes out was read from storage, which holds no NaN.
10. `$in` over a list of at least 16 ObjectIDs is decided by a set, made once per list, where
   upstream compared a value with each element: reading a version's records by the thousand datums
   of a batch cost a thousand comparisons a record (graphlake_in.go).
11. An ordered insert stops at its first refused document, as MongoDB's does. Upstream inserts a
   command's documents 100 at a time and, when one is refused (a duplicate key), inserts that
   hundred one by one and stops there, but then goes on with the next hundred: an ordered
   insert_many of a thousand records refused at the first still wrote nine hundred. Graphlake
   rolls such a batch back (services/batches.py), so the writes were wasted, and two calls sending
   the same keyed records in other orders refused each other's and both rolled back
   (services/record_keys.py; tests/test_ferretdb_inserts.py).
12. A delete of many documents is split into statements of at most 10,000 ids, run in one
   transaction. Upstream deleted them in one `DELETE ... WHERE _id IN (?, ?, ...)`, and SQLite takes
   at most 32,766 variables a statement: deleting more documents at once failed ("too many SQL
   variables"), so a dataset version of 40,000 datums could not be deleted, nor a lake upgraded whose
   version held 40,000 copies of records (tests/test_ferretdb_deletes.py).
13. An update, a findAndModify and a delete each hold the documents they may touch from reading what
   their filter matches to writing it (graphlake_lock.go): upstream read a document, applied the
   update and wrote it back with nothing holding other writers off, so two conditional updates sent
   at once both matched one document (a claim taken twice), and one of two `$inc`s was lost. MongoDB
   makes each document's match and write one step; here writers of the same documents take turns:
   a command whose filters all name their documents by `_id` holds those ids' stripes (and the
   collection shared), any other the whole collection. Inserts do not wait
   (tests/test_ferretdb_updates.py).
14. `partialFilterExpression` is taken in the one form `{<field>: {$exists: true}, ...}` (anything else
   is still refused as NotImplemented, saying what is taken), kept in the index's settings, returned by
   listIndexes as given, and made a partial SQLite index: `WHERE <expr> IS NOT NULL AND ...`, `<expr>`
   being the very expression the index holds for the field (graphlake_partial.go,
   graphlake_expr.go). Upstream refused it, so every index held an entry for every document, NULL
   for one without the field: a value stored by storeValue made three such entries (its owner,
   unpinned time and storage URI), an event two (its key), a box one (its mask's asset). Without
   them a value's insert costs FerretDB 3-7% less CPU, a box's 2-6% (bench/partial_indexes.py).
   SQLite uses a partial index only for a query whose WHERE implies its condition (`<expr> = ?`,
   `> ?`, `IN (...)`); the pushdown forces one (INDEXED BY) only for such a WHERE
   (graphlake_pushdown.go: graphlakeOrder), since SQLite refuses it otherwise and a walk of it would
   miss the documents it leaves out. An index of the same name and key with another filter is refused
   (IndexOptionsConflict), not ignored, so a caller must drop it first; the other backends refuse the
   option (tests/test_ferretdb_partial.py; graphlake_pushdown_test.go).
build-services.sh runs the tests of the packages 4 to 8, 10 and 14 change, upstream's and ours, before it builds
(8 in tests/test_ferretdb_updates.py too); every reply the suite reads goes through 9.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

root = Path(sys.argv[1])
here = Path(__file__).parent


def replace(name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text()
    if text.count(old) != 1:
        sys.exit(f"patch.py: {path} changed; expected once: {old[:70]!r}")
    path.write_text(text.replace(old, new))


def replaced_module(path: str) -> Path:
    """A copy of the dependency `path` (at the version the build requires) inside the build, which
    go.mod now uses in its place, ready to patch."""
    module = json.loads(subprocess.run(["go", "mod", "download", "-json", path], cwd=root, check=True,
                                       capture_output=True, text=True).stdout)
    copy = root / "graphlake" / path.rsplit("/", 1)[-1]
    shutil.copytree(module["Dir"], copy)
    for entry in [copy, *copy.rglob("*")]:
        entry.chmod(entry.stat().st_mode | 0o200)  # the module cache's files are read-only
    subprocess.run(["go", "mod", "edit", f"-replace={path}@{module['Version']}=./{copy.relative_to(root)}"],
                   cwd=root, check=True)
    if not re.search(rf"^replace {re.escape(path)} ", (root / "go.mod").read_text(), re.M):
        sys.exit(f"patch.py: go.mod does not replace {path}")
    return copy


shutil.copy(here / "graphlake_expr.go", root / "internal/backends/sqlite/metadata/graphlake_expr.go")
shutil.copy(here / "graphlake_pushdown.go", root / "internal/backends/sqlite/graphlake_pushdown.go")
shutil.copy(here / "graphlake_count.go", root / "internal/handler/graphlake_count.go")
shutil.copy(here / "graphlake_lock.go", root / "internal/handler/graphlake_lock.go")
shutil.copy(here / "graphlake_partial.go", root / "internal/handler/graphlake_partial.go")
shutil.copy(here / "graphlake_pushdown_test.go", root / "internal/backends/sqlite/graphlake_pushdown_test.go")
for name, package in (("graphlake_update.go", "common"), ("graphlake_sjson.go", "sjson"), ("graphlake_sjson_test.go", "sjson"),
                      ("graphlake_sjson_marshal.go", "sjson"), ("graphlake_sjson_marshal_test.go", "sjson"),
                      ("graphlake_projection.go", "common"), ("graphlake_projection_test.go", "common"),
                      ("graphlake_in.go", "common"), ("graphlake_in_test.go", "common")):
    shutil.copy(here / name, root / "internal/handler" / package / name)

# 1. the _id expression of the _id_ index
replace("internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"", 'IDColumn = DefaultColumn + `->"_id"`')

# 2a. an index remembers whether it holds SQL values (its fields are then value fields)
replace("internal/backends/sqlite/metadata/settings.go",
        '\tUnique bool           `json:"unique"`\n}',
        '\tUnique bool           `json:"unique"`\n\n'
        '\t// GraphlakeValue: created by Graphlake\'s build on GraphlakeValueExpr of each field.\n'
        '\tGraphlakeValue bool `json:"graphlakeValue,omitempty"`\n}')
replace("internal/backends/sqlite/metadata/settings.go",
        "\t\t\tUnique: index.Unique,\n", "\t\t\tUnique: index.Unique,\n\n\t\t\tGraphlakeValue: index.GraphlakeValue,\n")
replace("internal/backends/sqlite/metadata/registry.go",
        "\t\tcolumns := make([]string, len(index.Key))\n",
        "\t\tindex.GraphlakeValue = graphlakeValueIndex(ctx, db, c.TableName, index)\n\n"
        "\t\tcolumns := make([]string, len(index.Key))\n")
replace("internal/backends/sqlite/metadata/registry.go",
        '\t\t\tcolumns[i] = fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(fields, "->"))\n',
        '\t\t\tcolumns[i] = fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(fields, "->"))\n'
        "\t\t\tif index.GraphlakeValue {\n"
        "\t\t\t\tcolumns[i], _ = GraphlakeValueExpr(key.Field)\n"
        "\t\t\t}\n")

# 2b. the backend interface carries the sort, and says whether rows come sorted
replace("internal/backends/collection.go",
        "\tLimit  int64\n\n\tOnlyRecordIDs bool",
        "\tLimit  int64\n\n\t// GraphlakeSort: a find's sort, which the backend may apply (then it sets GraphlakeSorted).\n"
        "\tGraphlakeSort *types.Document\n\n"
        "\t// GraphlakeCount: only the number of matches is wanted (then the backend may set GraphlakeCounted).\n"
        "\tGraphlakeCount bool\n\n\tOnlyRecordIDs bool")
replace("internal/backends/collection.go",
        "type QueryResult struct {\n\tIter types.DocumentsIterator\n}",
        "type QueryResult struct {\n\tIter types.DocumentsIterator\n\n\tGraphlakeSorted bool\n\n"
        "\tGraphlakeCounted bool\n\tGraphlakeCount   int64\n}")
replace("internal/backends/collection.go",
        "type ExplainParams struct {\n\tFilter *types.Document\n\tSort   *types.Document\n\tLimit  int64\n}",
        "type ExplainParams struct {\n\tFilter *types.Document\n\tSort   *types.Document\n\tLimit  int64\n\n"
        "\tGraphlakeSort *types.Document\n}")

# Upstream's `_id` pushdown, written twice (Query and Explain; Explain also flags it).
upstream_id_if = """	// that logic should exist in one place
	// TODO https://github.com/FerretDB/FerretDB/issues/3235
	if params.Filter.Len() == 1 {
		v, _ := params.Filter.Get("_id")
		switch v.(type) {
		case string, types.ObjectID:
			whereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
			args = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		}
	}
"""
upstream_id_where = ("\tvar whereClause string\n\tvar args []any\n\n" + upstream_id_if +
                     "\n\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n")
upstream_explain_where = ("\tvar filterPushdown bool\n\tvar whereClause string\n\tvar args []any\n\n" +
                          upstream_id_if.replace("\t\tcase string, types.ObjectID:\n",
                                                 "\t\tcase string, types.ObjectID:\n\t\t\tfilterPushdown = true\n") +
                          "\n\torderByClause := prepareOrderByClause(params.Sort)\n\tsortPushdown := orderByClause != \"\"\n\n"
                          "\tq := `EXPLAIN QUERY PLAN ` + selectClause + whereClause + orderByClause\n")
replace("internal/backends/sqlite/collection.go", upstream_id_where, """	plan := graphlakePlanQuery(meta, params.Filter, params.GraphlakeSort)
	args := plan.args

	if params.GraphlakeCount && plan.exact && params.Sort.Len() == 0 && params.Limit == 0 {
		return graphlakeCount(ctx, db, meta, plan)
	}

	q += plan.indexedBy + plan.where
	if params.Sort.Len() > 0 { // $natural
		plan.sorted = false
		q += prepareOrderByClause(params.Sort)
	} else {
		q += plan.orderBy
	}
""")
replace("internal/backends/sqlite/collection.go",
        "\treturn &backends.QueryResult{\n\t\tIter: newQueryIterator(ctx, rows, params.OnlyRecordIDs),\n\t}, nil",
        "\treturn &backends.QueryResult{\n\t\tIter:            newQueryIterator(ctx, rows, params.OnlyRecordIDs),\n"
        "\t\tGraphlakeSorted: plan.sorted,\n\t}, nil")
replace("internal/backends/sqlite/collection.go", upstream_explain_where, """	plan := graphlakePlanQuery(meta, params.Filter, params.GraphlakeSort)
	args := plan.args
	filterPushdown := plan.where != ""

	orderByClause := plan.orderBy
	if params.Sort.Len() > 0 { // $natural
		orderByClause = prepareOrderByClause(params.Sort)
	}

	sortPushdown := orderByClause != ""

	q := `EXPLAIN QUERY PLAN ` + selectClause + plan.indexedBy + plan.where + orderByClause
""")

# 2c. writes keep value fields scalar
check = "\tif err := graphlakeCheckScalars(meta, params.Docs); err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n"
insert_meta = "\tdb := c.r.DatabaseGetExisting(ctx, c.dbName)\n\tmeta := c.r.CollectionGet(ctx, c.dbName, c.name)\n"
replace("internal/backends/sqlite/collection.go", insert_meta, insert_meta + "\n" + check)
update = "\tq := fmt.Sprintf(`UPDATE %q SET %s = ? WHERE %s = ?`, meta.TableName, metadata.DefaultColumn, metadata.IDColumn)\n"
replace("internal/backends/sqlite/collection.go", update, check + "\n" + update)

# 2d. find and explain hand their sort to the backend; find skips its in-memory sort when the rows come sorted
hand_sort = ("\tif !h.DisablePushdown && qp.Sort == nil && params.Sort.Len() > 0%s {\n"
             "\t\tqp.GraphlakeSort = params.Sort\n\t}\n\n")
replace("internal/handler/msg_find.go", "\t// Limit pushdown is not applied if:\n",
        hand_sort % "" + "\t// Limit pushdown is not applied if:\n")
replace("internal/handler/msg_explain.go", "\t// Limit pushdown is not applied if:\n",  # an aggregate sorts in memory
        hand_sort % " && !params.Aggregate" + "\t// Limit pushdown is not applied if:\n")
# 2e. a driver's count (the aggregation $match + $group {$sum: 1}) is answered by the backend when it can
replace("internal/handler/msg_aggregate.go", "\t\tqp := new(backends.QueryParams)\n",
        "\t\tqp := new(backends.QueryParams)\n\n"
        "\t\tcountID, countName, count := graphlakeCountShape(aggregationStages)\n"
        "\t\tqp.GraphlakeCount = count && !h.DisablePushdown\n")
replace("internal/handler/msg_aggregate.go", "&stagesDocumentsParams{c, qp, stagesDocuments}",
        "&stagesDocumentsParams{c, qp, stagesDocuments, countID, countName}")
replace("internal/handler/msg_aggregate.go",
        "type stagesDocumentsParams struct {\n\tc      backends.Collection\n\tqp     *backends.QueryParams\n\tstages []aggregations.Stage\n}",
        "type stagesDocumentsParams struct {\n\tc      backends.Collection\n\tqp     *backends.QueryParams\n\tstages []aggregations.Stage\n\n"
        "\tcountID   any\n\tcountName string\n}")
replace("internal/handler/msg_aggregate.go", "\tcloser.Add(queryRes.Iter)\n\n\titer := queryRes.Iter\n",
        "\tcloser.Add(queryRes.Iter)\n\n"
        "\tif queryRes.GraphlakeCounted {\n\t\treturn graphlakeCountResult(p.countID, p.countName, queryRes.GraphlakeCount), nil\n\t}\n\n"
        "\titer := queryRes.Iter\n")

# 2f. no leak tracking in a release build: upstream records a stack trace in a pprof profile and sets a
# finalizer for every iterator (each document and array a reply encodes): a fifth of a find's CPU.
for func in ("Track", "Untrack"):
    replace("internal/util/resource/resource.go",
            f"func {func}(obj any, token *Token) {{\n\tcheckArgs(obj, token)\n",
            f"func {func}(obj any, token *Token) {{\n\tcheckArgs(obj, token)\n\n\tif !debugbuild.Enabled {{\n\t\treturn\n\t}}\n")

# 2g. explain says which build answers, so Graphlake knows which indexes serve it (graphlake/database.py)
replace("internal/handler/msg_explain.go",
        '\t\t\t"limitPushdown", res.LimitPushdown,\n',
        '\t\t\t"limitPushdown", res.LimitPushdown,\n\t\t\t"graphlakeBuild", int32(GraphlakeBuild),\n')
(root / "internal/handler/graphlake_build.go").write_text(
    "package handler\n\n// GraphlakeBuild is the number of Graphlake's build of FerretDB (scripts/build-services.sh).\n"
    f"const GraphlakeBuild = {sys.argv[2]}\n")

# 2h. dotted filter keys reach the backend, which handles them (upstream drops them before the backend)
replace("cmd/ferretdb/main.go", "\t\t\tEnableNestedPushdown:    cli.Test.EnableNestedPushdown,\n",
        "\t\t\tEnableNestedPushdown:    true,\n")

replace("internal/handler/msg_find.go",
        "\titer, err := h.makeFindIter(queryRes.Iter, closer, params)\n",
        "\titerParams := params\n\tif queryRes.GraphlakeSorted {\n\t\tsorted := *params\n\t\tsorted.Sort = nil\n"
        "\t\titerParams = &sorted\n\t}\n\n\titer, err := h.makeFindIter(queryRes.Iter, closer, iterParams)\n")

# 3. distinct takes maxTimeMS (ignored: the driver's deadline closes the connection, cancelling the query)
replace("internal/handler/common/distinct.go",
        '\tComment    string          `ferretdb:"comment,opt"`\n',
        '\tComment    string          `ferretdb:"comment,opt"`\n\tMaxTimeMS  any             `ferretdb:"maxTimeMS,ignored"`\n')

# 4. one-pass decoding of stored documents: upstream's decoder stays, under another name
replace("internal/handler/sjson/sjson.go", "func Unmarshal(data []byte) (*types.Document, error) {",
        "func upstreamUnmarshal(data []byte) (*types.Document, error) {")

# 5. copy-free projections on a find (the only caller of this iterator)
replace("internal/handler/common/projection_iterator.go",
        "\tprojected, err := ProjectDocument(doc, iter.projection, iter.filter, iter.inclusion)\n",
        "\tif projected, ok := graphlakeProject(doc, iter.projection, iter.inclusion); ok {\n"
        "\t\treturn unused, projected, nil\n\t}\n\n"
        "\tprojected, err := ProjectDocument(doc, iter.projection, iter.filter, iter.inclusion)\n")

# 6. one-pass encoding for storage: upstream's encoder stays, under another name
replace("internal/handler/sjson/sjson.go", "func Marshal(d *types.Document) ([]byte, error) {",
        "func upstreamMarshal(d *types.Document) ([]byte, error) {")

# 7. SQLite's memcmp and memcpy: the runtime's, in a copy of the libc module the build replaces
FAST_MEMCMP = """{
\t// Graphlake's build (scripts/ferretdb/patch.py): the runtime's vectorized comparison, not a byte
\t// loop. Only the sign of the result is defined, as in C.
\tif n == 0 {
\t\treturn 0
\t}
\ta := unsafe.String((*byte)(unsafe.Pointer(%s)), n)
\tb := unsafe.String((*byte)(unsafe.Pointer(%s)), n)
\tif a == b {
\t\treturn 0
\t}
\tif a < b {
\t\treturn -1
\t}
\treturn 1
}
"""
FAST_MEMCPY = """{
\t// Graphlake's build (scripts/ferretdb/patch.py): the runtime's copy, not a word loop.
\tif n != 0 {
\t\tcopy(unsafe.Slice((*byte)(unsafe.Pointer(dest)), n), unsafe.Slice((*byte)(unsafe.Pointer(src)), n))
\t}
\treturn dest
}
"""


def replace_function(path: Path, signature: str, body: str) -> None:
    """The function that begins with `signature` (a whole line, ending in `{`) gets `body`."""
    text = path.read_text()
    if text.count(signature) != 1:
        sys.exit(f"patch.py: {path} changed; expected once: {signature!r}")
    start = text.index(signature)
    end = text.index("\n}\n", start) + len("\n}\n")
    path.write_text(text[:start] + signature[:-1] + body + text[end:])


libc = replaced_module("modernc.org/libc")
shutil.copy(here / "graphlake_libc_test.go", libc / "graphlake_libc_test.go")
ccgo = sorted(libc.glob("ccgo_linux_*.go"))
if not ccgo:
    sys.exit(f"patch.py: {libc} has no ccgo_linux_*.go")
for path in ccgo:  # musl, translated: both functions are loops
    replace_function(path, "func Xmemcmp(tls *TLS, vl uintptr, vr uintptr, n Tsize_t) (r1 int32) {", FAST_MEMCMP % ("vl", "vr"))
    replace_function(path, "func Xmemcpy(tls *TLS, dest uintptr, src uintptr, n Tsize_t) (r uintptr) {", FAST_MEMCPY)
# Elsewhere (macOS, the BSDs) libc.go's memcpy already copies; its memcmp is a loop too.
replace_function(libc / "libc.go", "func Xmemcmp(t *TLS, s1, s2 uintptr, n types.Size_t) int32 {", FAST_MEMCMP % ("s1", "s2"))

# 8. update statements' changed documents written together (graphlake_update.go), a thousand at a time
replace("internal/handler/common/update.go",
        "\tresult := new(UpdateResult)\n\n\tisFindAndModify := (strings.ToLower(cmd) == \"findandmodify\")\n",
        "\tresult := new(UpdateResult)\n\n\tisFindAndModify := (strings.ToLower(cmd) == \"findandmodify\")\n\n"
        "\t// Graphlake's build: changed documents are held, and written together (graphlake_update.go);\n"
        "\t// by this call, unless its caller holds them for several statements.\n"
        "\tupdates := graphlakeUpdatesFrom(ctx)\n"
        "\town := updates == nil\n"
        "\tif own {\n\t\tupdates = new(GraphlakeUpdates)\n\t}\n")
replace("internal/handler/common/update.go",
        "\t\t\tif !upsert {\n\t\t\t\treturn result, nil\n\t\t\t}\n",
        "\t\t\tif !upsert {\n\t\t\t\tif own {\n\t\t\t\t\tif err = updates.Flush(ctx); err != nil {\n"
        "\t\t\t\t\t\treturn nil, lazyerrors.Error(err)\n\t\t\t\t\t}\n\t\t\t\t}\n\n"
        "\t\t\t\treturn result, nil\n\t\t\t}\n")
replace("internal/handler/common/update.go",
        "\t\t} else if modified {\n\t\t\t_, err := c.UpdateAll(",
        "\t\t} else if modified && !isFindAndModify {\n"
        "\t\t\tif err = updates.add(ctx, c, doc); err != nil {\n\t\t\t\treturn nil, lazyerrors.Error(err)\n\t\t\t}\n\n"
        "\t\t\tresult.Modified.Count++\n"
        "\t\t} else if modified {\n\t\t\t_, err := c.UpdateAll(")
# ... and an update command's statements that name their documents by _id share them
replace("internal/handler/msg_update.go",
        "\tfor _, u := range params.Updates {\n\t\tc, err := db.Collection(params.Collection)\n",
        "\t// Graphlake's build: statements naming documents by _id are written together (graphlake_update.go).\n"
        "\tupdates := new(common.GraphlakeUpdates)\n"
        "\tbatched := common.WithGraphlakeUpdates(ctx, updates)\n\n"
        "\tfor _, u := range params.Updates {\n\t\tc, err := db.Collection(params.Collection)\n")
replace("internal/handler/msg_update.go",
        "\t\tvar qp backends.QueryParams\n",
        "\t\tstatementCtx := batched\n"
        "\t\tif u.Upsert || !updates.Takes(u.Filter) {\n"
        "\t\t\tif err = updates.Flush(ctx); err != nil {\n\t\t\t\treturn 0, 0, nil, lazyerrors.Error(err)\n\t\t\t}\n\n"
        "\t\t\tstatementCtx = ctx\n\t\t}\n\n"
        "\t\tvar qp backends.QueryParams\n")
replace("internal/handler/msg_update.go",
        "\t\tresult, err := common.UpdateDocument(ctx, c, \"update\", iter, &u)\n",
        "\t\tresult, err := common.UpdateDocument(statementCtx, c, \"update\", iter, &u)\n\n"
        "\t\t// Graphlake's build: the statement's query is closed now, not when the command ends: an\n"
        "\t\t// update of one document stops reading early and kept its connection, so a bulk write of\n"
        "\t\t// more statements than the pool has connections waited for one for ever (upstream too).\n"
        "\t\tcloser.Close()\n")
replace("internal/handler/msg_update.go",
        "\treturn matched, modified, &upserted, nil\n}",
        "\tif err = updates.Flush(ctx); err != nil {\n\t\treturn 0, 0, nil, lazyerrors.Error(err)\n\t}\n\n"
        "\treturn matched, modified, &upserted, nil\n}")

# ... with one compiled UPDATE for the documents written together
replace("internal/util/fsql/tx.go", "// Commit calls [*sql.Tx.Commit].\n",
        "// GraphlakePrepare compiles a statement to run many times in this transaction (Graphlake's build).\n"
        "func (tx *Tx) GraphlakePrepare(ctx context.Context, query string) (*sql.Stmt, error) {\n"
        "\treturn tx.sqlTx.PrepareContext(ctx, query)\n}\n\n"
        "// Commit calls [*sql.Tx.Commit].\n")
replace("internal/backends/sqlite/collection.go",
        "\terr := db.InTransaction(ctx, func(tx *fsql.Tx) error {\n\t\tfor _, doc := range params.Docs {\n",
        "\terr := db.InTransaction(ctx, func(tx *fsql.Tx) error {\n"
        "\t\t// Graphlake's build: compiled once for all the documents (scripts/ferretdb/patch.py, step 8).\n"
        "\t\tstmt, err := tx.GraphlakePrepare(ctx, q)\n"
        "\t\tif err != nil {\n\t\t\treturn lazyerrors.Error(err)\n\t\t}\n"
        "\t\tdefer stmt.Close()\n\n"
        "\t\tfor _, doc := range params.Docs {\n")
replace("internal/backends/sqlite/collection.go",
        "\t\t\tr, err := tx.ExecContext(ctx, q, string(b), arg)\n",
        "\t\t\tr, err := stmt.ExecContext(ctx, string(b), arg)\n")

# 9. replies are not decoded again to look for NaNs (requests still are)
wire = replaced_module("github.com/FerretDB/wire")
replace(str((wire / "op_msg.go").relative_to(root)), "\tmsg.sections = sections\n\n\tif Debug || CheckNaNs {\n",
        "\tmsg.sections = sections\n\n"
        "\t// Graphlake's build: what FerretDB sends is not checked again (scripts/ferretdb/patch.py, step 9).\n"
        "\tif Debug {\n")

# 10. $in over many ObjectIDs decided by a set (graphlake_in.go), once the operand is known to be a list
in_operand = ("\t\tcase \"$in\":\n"
              "\t\t\t// {field: {$in: [value1, value2, ...]}}\n"
              "\t\t\tarr, ok := exprValue.(*types.Array)\n"
              "\t\t\tif !ok {\n"
              "\t\t\t\treturn false, handlererrors.NewCommandErrorMsgWithArgument(\n"
              "\t\t\t\t\thandlererrors.ErrBadValue,\n"
              "\t\t\t\t\t\"$in needs an array\",\n"
              "\t\t\t\t\texprKey,\n"
              "\t\t\t\t)\n"
              "\t\t\t}\n")
replace("internal/handler/common/filter.go", in_operand,
        in_operand + "\n"
        "\t\t\t// Graphlake's build: a long list of ObjectIDs is a set (scripts/ferretdb/patch.py, step 10).\n"
        "\t\t\tif found, decided := graphlakeIn(fieldValue, arr); decided {\n"
        "\t\t\t\tif !found {\n"
        "\t\t\t\t\treturn false, nil\n"
        "\t\t\t\t}\n\n"
        "\t\t\t\tcontinue\n"
        "\t\t\t}\n")

# 11. an ordered insert stops at its first refusal, not only within the hundred documents holding it
replace("internal/handler/msg_insert.go",
        "\t\t\tif params.Ordered {\n\t\t\t\tbreak\n\t\t\t}\n\t\t}\n\t}\n\n\tres := must.NotFail(types.NewDocument(\n",
        "\t\t\tif params.Ordered {\n\t\t\t\tbreak\n\t\t\t}\n\t\t}\n\n"
        "\t\t// Graphlake's build: the documents after an ordered insert's refusal are not inserted (step 11).\n"
        "\t\tif params.Ordered && len(writeErrors) > 0 {\n\t\t\tbreak\n\t\t}\n"
        "\t}\n\n\tres := must.NotFail(types.NewDocument(\n")

# 12. a delete of many documents in statements of at most 10,000 ids, in one transaction
replace("internal/backends/sqlite/collection.go",
        "\tq := fmt.Sprintf(`DELETE FROM %q WHERE %s IN (%s)`, meta.TableName, column, strings.Join(placeholders, \", \"))\n\n"
        "\tres, err := db.ExecContext(ctx, q, args...)\n\tif err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n\n"
        "\tra, err := res.RowsAffected()\n\tif err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n",
        "\t// Graphlake's build: at most 10,000 ids a statement (SQLite takes 32,766 variables), in one transaction (step 12).\n"
        "\tvar ra int64\n\n"
        "\terr := db.InTransaction(ctx, func(tx *fsql.Tx) error {\n"
        "\t\tfor start := 0; start < len(args); start += 10000 {\n"
        "\t\t\tend := start + 10000\n"
        "\t\t\tif end > len(args) {\n\t\t\t\tend = len(args)\n\t\t\t}\n\n"
        "\t\t\tq := fmt.Sprintf(`DELETE FROM %q WHERE %s IN (%s)`, meta.TableName, column, strings.Join(placeholders[start:end], \", \"))\n\n"
        "\t\t\tres, err := tx.ExecContext(ctx, q, args[start:end]...)\n"
        "\t\t\tif err != nil {\n\t\t\t\treturn lazyerrors.Error(err)\n\t\t\t}\n\n"
        "\t\t\tn, err := res.RowsAffected()\n"
        "\t\t\tif err != nil {\n\t\t\t\treturn lazyerrors.Error(err)\n\t\t\t}\n\n"
        "\t\t\tra += n\n"
        "\t\t}\n\n"
        "\t\treturn nil\n"
        "\t})\n"
        "\tif err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n")

# 13. an update, findAndModify or delete holds the documents it may touch from its read to its last write (graphlake_lock.go)
def hold(filters: str) -> str:
    return ("\t// Graphlake's build: no other update, findAndModify or delete of these documents meanwhile (step 13).\n"
            f"\tdefer graphlakeHold(params.DB, params.Collection, {filters})()\n\n")


replace("internal/handler/msg_update.go",
        "\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n",
        hold("graphlakeUpdateFilters(params.Updates)") + "\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n")
replace("internal/handler/msg_findandmodify.go",
        "\tres, err := h.findAndModifyDocument(connCtx, params)\n",
        hold("[]*types.Document{params.Query}") + "\tres, err := h.findAndModifyDocument(connCtx, params)\n")
replace("internal/handler/msg_delete.go",
        "\tvar deleted int32\n\twriteErrors := types.MakeArray(0)\n",
        hold("graphlakeDeleteFilters(params.Deletes)") + "\tvar deleted int32\n\twriteErrors := types.MakeArray(0)\n")

# 14. partial indexes on the existence of fields (graphlake_partial.go; the WHERE: graphlake_expr.go)
replace("internal/backends/collection.go",
        "type IndexInfo struct {\n\tName   string\n\tKey    []IndexKeyPair\n\tUnique bool\n}",
        "type IndexInfo struct {\n\tName   string\n\tKey    []IndexKeyPair\n\tUnique bool\n\n"
        "\t// GraphlakePartial: the fields a document must hold to be in the index (partialFilterExpression).\n"
        "\tGraphlakePartial []string\n}")
replace("internal/backends/sqlite/metadata/settings.go",  # as 2a left it
        '\tGraphlakeValue bool `json:"graphlakeValue,omitempty"`\n}',
        '\tGraphlakeValue bool `json:"graphlakeValue,omitempty"`\n\n'
        '\t// GraphlakePartial: the fields a document must hold to be in the index (partialFilterExpression).\n'
        '\tGraphlakePartial []string `json:"graphlakePartial,omitempty"`\n}')
replace("internal/backends/sqlite/metadata/settings.go",  # deepCopy, as 2a left it
        "\t\t\tGraphlakeValue: index.GraphlakeValue,\n",
        "\t\t\tGraphlakeValue: index.GraphlakeValue,\n\n\t\t\tGraphlakePartial: slices.Clone(index.GraphlakePartial),\n")
replace("internal/backends/sqlite/metadata/registry.go",
        "\t\tq = fmt.Sprintf(\n\t\t\tq,\n\t\t\tc.TableName+\"_\"+index.Name,\n\t\t\tc.TableName,\n"
        "\t\t\tstrings.Join(columns, \", \"),\n\t\t)\n",
        "\t\tq = fmt.Sprintf(\n\t\t\tq,\n\t\t\tc.TableName+\"_\"+index.Name,\n\t\t\tc.TableName,\n"
        "\t\t\tstrings.Join(columns, \", \"),\n\t\t)\n\n"
        "\t\t// Graphlake's build: a partial index (scripts/ferretdb/patch.py, step 14).\n"
        "\t\tq += GraphlakePartialWhere(index)\n")
replace("internal/backends/sqlite/collection.go",  # ListIndexes
        "\t\t\tName:   index.Name,\n\t\t\tUnique: index.Unique,\n\t\t\tKey:    make([]backends.IndexKeyPair, len(index.Key)),\n",
        "\t\t\tName:   index.Name,\n\t\t\tUnique: index.Unique,\n\t\t\tKey:    make([]backends.IndexKeyPair, len(index.Key)),\n\n"
        "\t\t\tGraphlakePartial: index.GraphlakePartial,\n")
replace("internal/backends/sqlite/collection.go",  # CreateIndexes
        "\t\t\tName:   index.Name,\n\t\t\tKey:    make([]metadata.IndexKeyPair, len(index.Key)),\n\t\t\tUnique: index.Unique,\n",
        "\t\t\tName:   index.Name,\n\t\t\tKey:    make([]metadata.IndexKeyPair, len(index.Key)),\n\t\t\tUnique: index.Unique,\n\n"
        "\t\t\tGraphlakePartial: index.GraphlakePartial,\n")
for backend in ("postgresql", "mysql"):  # they would make a full index: for a unique one, a different rule
    replace(f"internal/backends/{backend}/collection.go",
            "\tindexes := make([]metadata.IndexInfo, len(params.Indexes))\n\tfor i, index := range params.Indexes {\n",
            "\tfor _, index := range params.Indexes {\n\t\tif len(index.GraphlakePartial) > 0 {\n"
            "\t\t\treturn nil, lazyerrors.New(\"partialFilterExpression is implemented for the SQLite backend only\")\n"
            "\t\t}\n\t}\n\n"
            "\tindexes := make([]metadata.IndexInfo, len(params.Indexes))\n\tfor i, index := range params.Indexes {\n")
replace("internal/handler/msg_createindexes.go",
        '\t\tcase "partialFilterExpression", "expireAfterSeconds", "hidden", "storageEngine",\n',
        '\t\tcase "partialFilterExpression":\n'
        '\t\t\t// Graphlake\'s build: {<field>: {$exists: true}, ...} (scripts/ferretdb/patch.py, step 14).\n'
        '\t\t\tindex.GraphlakePartial, err = graphlakePartialFields(command, must.NotFail(indexDoc.Get(opt)))\n'
        '\t\t\tif err != nil {\n\t\t\t\treturn nil, err\n\t\t\t}\n\n'
        '\t\tcase "expireAfterSeconds", "hidden", "storageEngine",\n')
replace("internal/handler/msg_createindexes.go",
        "\t\t\tif (newIdx.Name == existingIdx.Name && newKey == existingKey) || newKey == \"_id: 1\" {\n",
        "\t\t\t// Graphlake's build: the same index with another filter is not taken for the one that exists.\n"
        "\t\t\tif newIdx.Name == existingIdx.Name && newKey == existingKey &&\n"
        "\t\t\t\t!slices.Equal(newIdx.GraphlakePartial, existingIdx.GraphlakePartial) {\n"
        "\t\t\t\tmsg := fmt.Sprintf(\"An index named %q exists with another partialFilterExpression; drop it first\", newIdx.Name)\n"
        "\t\t\t\treturn nil, handlererrors.NewCommandErrorMsgWithArgument(handlererrors.ErrIndexOptionsConflict, msg, command)\n"
        "\t\t\t}\n\n"
        "\t\t\tif (newIdx.Name == existingIdx.Name && newKey == existingKey) || newKey == \"_id: 1\" {\n")
replace("internal/handler/msg_listindexes.go",
        "\t\tif index.Unique && index.Name != backends.DefaultIndexName {\n\t\t\tindexDoc.Set(\"unique\", index.Unique)\n\t\t}\n",
        "\t\tif index.Unique && index.Name != backends.DefaultIndexName {\n\t\t\tindexDoc.Set(\"unique\", index.Unique)\n\t\t}\n\n"
        "\t\t// Graphlake's build: a partial index's filter, as given (scripts/ferretdb/patch.py, step 14).\n"
        "\t\tif len(index.GraphlakePartial) > 0 {\n"
        "\t\t\tindexDoc.Set(\"partialFilterExpression\", graphlakePartialDocument(index.GraphlakePartial))\n\t\t}\n")
