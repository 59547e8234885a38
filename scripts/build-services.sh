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
# Our build of it pushes filters and sorts down to SQLite (scripts/ferretdb/patch.py says what it
# changes). The cache names a build by a hash of those sources (graphlake/local_services.py finds it
# the same way), so any change there builds anew. The number is what `explain` reports: raise it when
# Graphlake must tell builds apart (graphlake/database.py).
FERRETDB_BUILD_NUMBER=13
FERRETDB_SOURCE_HASH=$(cd "$(dirname "$0")/ferretdb" && LC_ALL=C ls -- *.go *.py | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
FERRETDB_BUILD="$FERRETDB_VERSION-graphlake-$FERRETDB_SOURCE_HASH"
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
  python3 "$(dirname "$0")/ferretdb/patch.py" "$work" "$FERRETDB_BUILD_NUMBER"
  # The packages the patch changes, tested before the build: upstream's tests and ours
  # (scripts/ferretdb/*_test.go). Upstream's test helpers find the module's root by its .git.
  mkdir -p "$work/.git"
  (cd "$work" && CGO_ENABLED=0 go test -count=1 ./internal/handler/sjson/ ./internal/handler/common/ >&2)
  (cd "$work" && CGO_ENABLED=0 go test -count=1 -run Graphlake modernc.org/libc >&2)
  (cd "$work" && CGO_ENABLED=0 go test -count=1 -run Graphlake ./internal/backends/sqlite/ >&2)
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
