#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy in deny.toml), over the whole
# workspace including mnist-train and the fuzz crate's lock file:
#   bans      no wildcard versions (duplicates are reported, not fatal)
#   licenses  permissive licenses only
#   sources   crates.io only, no git dependencies
#   advisories  RustSec advisories (vulnerable, unmaintained, yanked)
#
#   scripts/audit.sh
#
# The advisory database is cloned from GitHub; where GitHub cannot be
# reached the other checks still run and the script says plainly that
# advisories were NOT checked (exit code 3). Installs cargo-deny when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    cargo install cargo-deny --locked
fi

status=0
for manifest in Cargo.toml fuzz/Cargo.toml; do
    echo "== $manifest: bans, licenses, sources" >&2
    cargo deny --manifest-path "$manifest" check bans licenses sources || status=1
done

echo "== advisories (RustSec)" >&2
if cargo deny fetch db >/dev/null 2>&1; then
    for manifest in Cargo.toml fuzz/Cargo.toml; do
        cargo deny --manifest-path "$manifest" check --disable-fetch advisories || status=1
    done
else
    echo "advisories NOT checked: the RustSec database (github.com/RustSec/advisory-db) cannot be fetched" >&2
    [ "$status" -eq 0 ] && status=3
fi
exit "$status"
