#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 60) each, seeding the corpora with
# real upstream bytes from fixtures/ (manifests, whitelists, certificate, inflated
# catalogs and history databases). Needs cargo-fuzz (`cargo install cargo-fuzz`) and
# python3 (for zlib); nightly features are enabled through RUSTC_BOOTSTRAP=1.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(manifest whitelist certificate blacklist catalog history xattr variant_symlink)
fi
export RUSTC_BOOTSTRAP=1

seed_corpora() {
  local work storage
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$work/fixture.test.local"
  tar -xzf fixtures/reference/fixture.test.local/storage.tar.gz -C "$work/fixture.test.local"
  tar -xzf fixtures/upstream/legacy_aufs_repo_21/legacy_aufs_repo.tar.gz -C "$work"
  for t in manifest whitelist certificate blacklist catalog history xattr variant_symlink; do
    mkdir -p "fuzz/corpus/$t"
  done
  for storage in "$work/fixture.test.local" "$work/srv/cvmfs/legacy_aufs.cern.ch"; do
    cp "$storage/.cvmfspublished" "fuzz/corpus/manifest/$(basename "$storage")"
    [ -f "$storage/.cvmfswhitelist" ] && cp "$storage/.cvmfswhitelist" "fuzz/corpus/whitelist/$(basename "$storage")"
    python3 - "$storage" <<'PY'
import os, sys, zlib
storage = sys.argv[1]
for root, _, files in os.walk(os.path.join(storage, "data")):
    for name in files:
        kind = {"C": "catalog", "H": "history", "X": "certificate"}.get(name[-1])
        if kind is None:
            continue
        data = zlib.decompress(open(os.path.join(root, name), "rb").read())
        with open(os.path.join("fuzz/corpus", kind, name), "wb") as out:
            out.write(data)
PY
  done
  printf 'A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4\n<repo.example 42\n' \
    > fuzz/corpus/blacklist/sample
  printf '$(TEST_ARCH:-x86_64)/lib/$(OS)' > fuzz/corpus/variant_symlink/sample
  printf 'user.a\0value\0' > fuzz/corpus/xattr/sample
}

seed_corpora
cd fuzz
for t in "${targets[@]}"; do
  echo "=== fuzz target $t for ${seconds}s"
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)" || true
  if ls artifacts/"$t"/crash-* artifacts/"$t"/timeout-* artifacts/"$t"/oom-* >/dev/null 2>&1; then
    echo "!!! $t produced artifacts in fuzz/artifacts/$t"
    exit 1
  fi
done
echo "all fuzz targets ran ${seconds}s without a crash"
