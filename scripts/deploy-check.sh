#!/usr/bin/env bash
# Bundles the Worker as `wrangler deploy` would, without an account and without uploading
# (`wrangler deploy --dry-run`), and fails when the upload is over the Worker size limit.
#
# The limit (https://developers.cloudflare.com/workers/platform/limits/#worker-size) is 64 MiB
# uncompressed on every plan since Cloudflare dropped the compressed limits on 2026-09-04
# (https://github.com/cloudflare/workers-sdk/pull/14001). The gzipped size is also held to the
# old Workers Free limit, 3 MiB, as a budget: the bundle is a tenth of it, so crossing it means
# something large got in.
set -euo pipefail
cd "$(dirname "$0")/.."

LIMIT_KIB=$((64 * 1024))
GZIP_BUDGET_KIB=$((3 * 1024))

outdir=$(mktemp -d)
trap 'rm -rf "$outdir"' EXIT
report=$(WRANGLER_SEND_METRICS=false NO_COLOR=1 CI=true node_modules/.bin/node node_modules/wrangler/bin/wrangler.js \
  deploy --dry-run --outdir "$outdir" 2>&1) || { echo "$report" >&2; echo "deploy check: wrangler deploy --dry-run failed" >&2; exit 1; }
# wrangler prints e.g. "Total Upload: 762.17 KiB / gzip: 298.10 KiB".
read -r size gzipped < <(sed -n 's|^Total Upload: \([0-9.]*\) KiB / gzip: \([0-9.]*\) KiB$|\1 \2|p' <<<"$report") || {
  echo "$report" >&2
  echo "deploy check: no 'Total Upload' line in wrangler's output" >&2
  exit 1
}
echo "deploy check: the bundle is $size KiB (limit $LIMIT_KIB KiB), $gzipped KiB gzipped (budget $GZIP_BUDGET_KIB KiB)"
awk -v size="$size" -v gzipped="$gzipped" -v limit="$LIMIT_KIB" -v budget="$GZIP_BUDGET_KIB" \
  'BEGIN { exit !(size < limit && gzipped < budget) }' || { echo "deploy check: the bundle is too large" >&2; exit 1; }
