#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine's parsers with AFL++ and SharpFuzz.
# Usage: bench/fuzz/run.sh [TARGET|all] [SECONDS]   (default: all targets, 300 s each, one at a time)
#        bench/fuzz/run.sh --keep TARGET            (only the keep step, on out/fuzz/findings/TARGET)
# Builds bench/fuzz into out/fuzz/bin, instruments PSLinuxTrace.Engine.dll there (sharpfuzz, from
# SharpFuzz.CommandLine 2.3.0 installed under out/fuzz/tools), runs afl-fuzz on each target's corpus
# (tests/Fixtures/fuzz/TARGET), prints one line of figures per target, then keeps the new entries:
# AFL++'s new queue entries of at most 16 KiB, minimized by afl-cmin, those that found new edges
# (+cov) first and the latest first, at most MAX_NEW (12) files and MAX_NEW_BYTES (96 KiB) per target, copied back as
# id-<sha>; crashes and hangs are copied as crash-<sha>/hang-<sha> (fix the parser, keep them: the
# replay test runs them). Findings stay in out/fuzz/findings/TARGET.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
max_new=${MAX_NEW:-12}
max_new_bytes=${MAX_NEW_BYTES:-98304}
out=$repo/out/fuzz
tools=$out/tools
bin=$out/bin
harness=("$(command -v dotnet)" "$bin/PSLinuxTrace.Fuzz.dll")
# The runtime is not instrumented and is one process per run: AFL++ must not insist on its checks.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  AFL_SKIP_CRASHES=1 DOTNET_TieredCompilation=0 DOTNET_CLI_TELEMETRY_OPTOUT=1

# keep TARGET: copies the minimized new entries, crashes and hangs of its findings into its corpus; prints how many.
keep() {
  local t=$1 corpus=$repo/tests/Fixtures/fuzz/$1 findings=$out/findings/$1 kept=0 bytes=0 f size
  rm -rf "$findings/new" "$findings/min"; mkdir -p "$findings/new"
  find "$findings/default/queue" -maxdepth 1 -type f -name 'id:*' ! -name '*orig:*' -size -16385c -exec cp {} "$findings/new/" \;
  if [ -n "$(ls -A "$findings/new")" ]; then
    afl-cmin -i "$findings/new" -o "$findings/min" -t 5000 -m none -- "${harness[@]}" fuzz "$t" > "$findings/cmin.log" 2>&1 \
      || { mkdir -p "$findings/min"; cp "$findings"/new/* "$findings/min/"; }
    # The latest finds first (they build on the earlier ones, so reach deepest), +cov (new edges) before the rest.
    for f in $( (ls -r "$findings/min" | grep -F '+cov'; ls -r "$findings/min" | grep -vF '+cov') ); do
      size=$(stat -c %s "$findings/min/$f")
      [ "$kept" -ge "$max_new" ] && break
      [ $((bytes + size)) -gt "$max_new_bytes" ] && continue
      cp "$findings/min/$f" "$corpus/id-$(sha1sum "$findings/min/$f" | cut -c1-12)"
      kept=$((kept + 1)); bytes=$((bytes + size))
    done
  fi
  for f in "$findings"/default/crashes/id:*; do [ -f "$f" ] && cp "$f" "$corpus/crash-$(sha1sum "$f" | cut -c1-12)"; done
  for f in "$findings"/default/hangs/id:*; do [ -f "$f" ] && cp "$f" "$corpus/hang-$(sha1sum "$f" | cut -c1-12)"; done
  echo "$kept"
}

if [ "${1:-}" = --keep ]; then echo "kept $(keep "$2") new entries for $2"; exit 0; fi
target=${1:-all}
seconds=${2:-300}
if [ ! -x "$tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" > /dev/null || { echo "run.sh: could not install SharpFuzz.CommandLine"; exit 1; }
fi
rm -rf "$bin"
dotnet build -c Release -v q -nologo "$here/PSLinuxTrace.Fuzz.csproj" -o "$bin" > "$out.build.log" 2>&1 || { cat "$out.build.log"; echo "run.sh: build failed"; exit 1; }
"$tools/sharpfuzz" "$bin/PSLinuxTrace.Engine.dll" || { echo "run.sh: instrumentation failed"; exit 1; }
if [ "$target" = all ]; then targets=$("${harness[@]}" list | cut -f1); else targets=$target; fi

stat_of() { sed -n "s/^$1 *: *//p" "$2" | head -1; }
printf "%-11s %8s %9s %10s %9s %6s %7s %6s %5s\n" target seconds execs execs/s corpus_in queue crashes hangs kept
for t in $targets; do
  corpus=$repo/tests/Fixtures/fuzz/$t
  findings=$out/findings/$t
  rm -rf "$findings"; mkdir -p "$findings"
  n_in=$(find "$corpus" -type f | wc -l)
  afl-fuzz -V "$seconds" -i "$corpus" -o "$findings" -t 5000 -m none -- "${harness[@]}" fuzz "$t" > "$findings/afl.log" 2>&1
  stats=$findings/default/fuzzer_stats
  if [ ! -f "$stats" ]; then tail -20 "$findings/afl.log"; echo "run.sh: afl-fuzz did not run for $t"; continue; fi
  kept=$(keep "$t")
  printf "%-11s %8s %9s %10s %9s %6s %7s %6s %5s\n" "$t" "$(stat_of run_time "$stats")" "$(stat_of execs_done "$stats")" \
    "$(stat_of execs_per_sec "$stats")" "$n_in" "$(stat_of corpus_count "$stats")" "$(stat_of saved_crashes "$stats")" "$(stat_of saved_hangs "$stats")" "$kept"
done
