#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every test of the workspace.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

if cargo nextest --version >/dev/null 2>&1; then
    # nextest bounds every test in time (see .config/nextest.toml).
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
cargo test --workspace --doc
# Benches are not run here (speed is measured, not asserted), but they must keep building.
cargo bench --workspace --no-run
