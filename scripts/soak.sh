#!/usr/bin/env bash
# Soak test, not part of CI: mixed load on 1,000 subjects against the Worker on workerd for
# --minutes (default 30), with a crash restart of workerd every --restart-minutes (default 5),
# then a check that every acknowledged message is readable under its sequence with no gap.
# Prints the machine, then bench/soak.mjs's summary (its header lists every option):
#   ./scripts/soak.sh [--minutes 30] [--restart-minutes 5] [--rate 100] [--subjects 1000] [--csv FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-worker.sh
echo "- machine: $(nproc) cores, $(free -h | awk '/^Mem:/ { print $2 }') memory, load average $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src protocol || echo ' (with local changes)'); $(date -u '+%Y-%m-%d %H:%M UTC')"
exec node_modules/.bin/node bench/soak.mjs "$@"
