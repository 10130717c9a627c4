#!/usr/bin/env bash
# Run the cargo-fuzz targets in fuzz/ for a bounded time each, on the kept corpus
# (fuzz/corpus/TARGET), then minimise the corpus. A crash is copied to
# fuzz/regressions/TARGET (replayed by `cargo test`, tests/fuzz_corpus.rs) and fails the run.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 600)] [TARGET...]
# Needs only the stable toolchain: RUSTC_BOOTSTRAP lets it take the sanitizer flags.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-600}; shift || true
TARGETS=${*:-frames method properties field_table sasl_response config}
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz
export RUSTC_BOOTSTRAP=1
cd "$ROOT/fuzz"
status=0
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t for ${SECS}s"
  if ! cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -max_len=65536 \
      -rss_limit_mb=2048 -print_final_stats=1 2>"artifacts/$t.log"; then
    status=1
    mkdir -p "regressions/$t"
    cp artifacts/"$t"/crash-* artifacts/"$t"/oom-* artifacts/"$t"/timeout-* "regressions/$t/" 2>/dev/null
    echo "CRASH in $t: see fuzz/artifacts/$t.log; input kept in fuzz/regressions/$t"
  fi
  grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "artifacts/$t.log" | tail -2
  # keep the corpus small: only inputs that add coverage
  cargo fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1 || true
  echo "   corpus: $(ls "corpus/$t" | wc -l) inputs"
done
exit $status
