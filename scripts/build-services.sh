#!/usr/bin/env bash
# Builds the development/test services from their Go modules once and caches
# the binaries outside the repo, so every later `make run` / `make test` (and a
# second CI run on the same machine) skips the build.
#
#   scripts/build-services.sh ferretdb|minio|all
#
# Binaries land in $GRAPHLAKE_BIN_CACHE (default ~/.cache/graphlake/bin).
set -euo pipefail

FERRETDB_VERSION="v1.24.2"
# Our build of it carries two fixes (see patch_ferretdb); the suffix keeps an unpatched cache apart.
FERRETDB_BUILD="$FERRETDB_VERSION-graphlake.2"
# MinIO tags releases as RELEASE.<date>, which is not a Go module version, so the Go module
# proxy cannot serve `minio@RELEASE.2025-10-15T17-29-55Z` (nor its commit 9e49d5e). The proxy
# serves the final commit of the (now archived) repository as this pseudo-version: pin it.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
CACHE="${GRAPHLAKE_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graphlake/bin}"
mkdir -p "$CACHE"

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "error: Go is not installed, and it is needed to build $1." >&2
    echo "       Install Go (https://go.dev/doc/install, or 'apt-get install golang'), or set" >&2
    echo "       GRAPHLAKE_MONGODB_URL to a running MongoDB to skip the embedded FerretDB." >&2
    exit 1
  fi
}

# Two fixes to FerretDB's SQLite backend, the embedded default:
# 1. It creates the `_id` index on `_ferretdb_sjson->"_id"` but queried `_ferretdb_sjson->'$._id'`.
#    Both extract the same value, yet SQLite uses an expression index only for the same expression,
#    so every lookup by `_id` scanned the whole table (14 ms at 600 small documents, growing with
#    the collection). Querying with the index's own expression makes it a B-tree lookup.
# 2. It pushed down only `{_id: value}`; `{_id: {$in: [...]}}`, how Graphlake's DataLoaders fetch
#    documents by ID, scanned. It now becomes `WHERE _id IN (...)` on the same index. FerretDB still
#    applies the whole filter to what comes back, so a wider SQL match can never change a result.
# Upstream's v1 line is final (v2 dropped SQLite), so the fixes live here.
patch_ferretdb() {
  python3 - "$1/internal/backends/sqlite" <<'PY'
import sys
root = sys.argv[1]


def replace(name, old, new, count=1):
    path = f"{root}/{name}"
    text = open(path).read()
    if text.count(old) != count:
        sys.exit(f"patch_ferretdb: {path} changed; expected {count} of: {old[:60]!r}")
    open(path, "w").write(text.replace(old, new))


replace("metadata/metadata.go", 'IDColumn = DefaultColumn + "->\'$._id\'"', 'IDColumn = DefaultColumn + `->"_id"`')
query = """	if params.Filter.Len() == 1 {
		v, _ := params.Filter.Get("_id")
		switch v.(type) {
		case string, types.ObjectID:
			whereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
			args = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		}
	}
"""
explain = query.replace("		case string, types.ObjectID:\n", "		case string, types.ObjectID:\n			filterPushdown = true\n")
replace("collection.go", query, "	whereClause, args, _ = graphlakeIDWhere(params.Filter)\n")
replace("collection.go", explain, "	whereClause, args, filterPushdown = graphlakeIDWhere(params.Filter)\n")
with open(f"{root}/collection.go", "a") as out:
    out.write("""
// graphlakeIDWhere pushes down {_id: <string|ObjectID>} and {_id: {$in: [<string|ObjectID>, ...]}}.
func graphlakeIDWhere(filter *types.Document) (string, []any, bool) {
	if filter.Len() != 1 {
		return "", nil, false
	}

	v, _ := filter.Get("_id")

	switch v := v.(type) {
	case string, types.ObjectID:
		return fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn), []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}, true
	case *types.Document:
		if v.Len() != 1 {
			return "", nil, false
		}

		in, _ := v.Get("$in")

		values, ok := in.(*types.Array)
		if !ok || values.Len() == 0 || values.Len() > 10000 {
			return "", nil, false
		}

		args := make([]any, 0, values.Len())

		for i := 0; i < values.Len(); i++ {
			value := must.NotFail(values.Get(i))
			switch value.(type) {
			case string, types.ObjectID:
				args = append(args, string(must.NotFail(sjson.MarshalSingleValue(value))))
			default:
				return "", nil, false
			}
		}

		return fmt.Sprintf(` WHERE %s IN (?%s)`, metadata.IDColumn, strings.Repeat(", ?", len(args)-1)), args, true
	}

	return "", nil, false
}
""")
PY
}

build_ferretdb() {
  local out="$CACHE/ferretdb-$FERRETDB_BUILD"
  [ -x "$out" ] && { echo "$out"; return; }
  need_go FerretDB
  echo "building FerretDB $FERRETDB_BUILD (once; cached in $CACHE)" >&2
  local dir; dir=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  local work; work=$(mktemp -d)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' RETURN
  cp -r "$dir/." "$work/"
  chmod -R u+w "$work"
  # The module zip lacks build/version/version.txt; without it the binary panics at start.
  mkdir -p "$work/build/version"
  echo "$FERRETDB_VERSION" > "$work/build/version/version.txt"
  patch_ferretdb "$work"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" ./cmd/ferretdb)
  mv "$out.tmp" "$out"
  echo "$out"
}

build_minio() {
  local out="$CACHE/minio-$MINIO_VERSION"
  [ -x "$out" ] && { echo "$out"; return; }
  need_go MinIO
  echo "building MinIO $MINIO_VERSION (once; cached in $CACHE)" >&2
  local gobin; gobin=$(mktemp -d)
  CGO_ENABLED=0 GOBIN="$gobin" go install "github.com/minio/minio@$MINIO_VERSION"
  mv "$gobin/minio" "$out"
  rm -rf "$gobin"
  echo "$out"
}

case "${1:-all}" in
  ferretdb) build_ferretdb ;;
  minio) build_minio ;;
  all) build_ferretdb; build_minio ;;
  *) echo "usage: $0 ferretdb|minio|all" >&2; exit 2 ;;
esac
