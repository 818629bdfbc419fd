#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine's parsers with AFL++ and SharpFuzz.
# Usage: bench/fuzz/run.sh [TARGET|all] [SECONDS]   (default: all targets, 300 s each, one at a time)
# Builds bench/fuzz into out/fuzz/bin, instruments PSLinuxTrace.Engine.dll there (sharpfuzz, from
# SharpFuzz.CommandLine 2.3.0 installed under out/fuzz/tools), runs afl-fuzz on each target's corpus
# (tests/Fixtures/fuzz/TARGET), prints one line of figures per target, then keeps the new entries:
# the queue minimized by afl-cmin, cut to MAX_NEW (default 12) of at most 4 KiB, copied back as
# id-<sha>; crashes and hangs are copied as crash-<sha>/hang-<sha> (fix the parser, keep them: the
# replay test runs them). Findings stay in out/fuzz/findings/TARGET.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${1:-all}
seconds=${2:-300}
max_new=${MAX_NEW:-12}
out=$repo/out/fuzz
tools=$out/tools
bin=$out/bin

if [ ! -x "$tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" > /dev/null || { echo "run.sh: could not install SharpFuzz.CommandLine"; exit 1; }
fi
rm -rf "$bin"
dotnet build -c Release -v q -nologo "$here/PSLinuxTrace.Fuzz.csproj" -o "$bin" > "$out.build.log" 2>&1 || { cat "$out.build.log"; echo "run.sh: build failed"; exit 1; }
"$tools/sharpfuzz" "$bin/PSLinuxTrace.Engine.dll" || { echo "run.sh: instrumentation failed"; exit 1; }
harness=("$(command -v dotnet)" "$bin/PSLinuxTrace.Fuzz.dll")
if [ "$target" = all ]; then targets=$("${harness[@]}" list | cut -f1); else targets=$target; fi

# The runtime is not instrumented and is one process per run: AFL++ must not insist on its checks.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  AFL_SKIP_CRASHES=1 DOTNET_TieredCompilation=0 DOTNET_CLI_TELEMETRY_OPTOUT=1
stat_of() { sed -n "s/^$1 *: *//p" "$2" | head -1; }
printf "%-11s %8s %9s %10s %8s %8s %7s %6s %6s\n" target seconds execs execs/s corpus_in queue crashes hangs kept
for t in $targets; do
  corpus=$repo/tests/Fixtures/fuzz/$t
  findings=$out/findings/$t
  rm -rf "$findings"; mkdir -p "$findings"
  n_in=$(find "$corpus" -type f | wc -l)
  afl-fuzz -V "$seconds" -i "$corpus" -o "$findings" -t 5000 -m none -- "${harness[@]}" fuzz "$t" > "$findings/afl.log" 2>&1
  stats=$findings/default/fuzzer_stats
  if [ ! -f "$stats" ]; then tail -20 "$findings/afl.log"; echo "run.sh: afl-fuzz did not run for $t"; continue; fi
  kept=0
  # New coverage only: AFL++'s queue minus the seeds, minimized to the entries that keep its edges.
  mkdir -p "$findings/new"
  find "$findings/default/queue" -maxdepth 1 -type f -name 'id:*' ! -name '*orig:*' -size -4k -exec cp {} "$findings/new/" \;
  if [ -n "$(ls -A "$findings/new")" ]; then
    afl-cmin -i "$findings/new" -o "$findings/min" -t 5000 -m none -- "${harness[@]}" fuzz "$t" > "$findings/cmin.log" 2>&1 \
      || { echo "run.sh: afl-cmin failed for $t (see $findings/cmin.log); keeping the +cov entries"; mkdir -p "$findings/min"; cp "$findings"/new/*+cov* "$findings/min/" 2>/dev/null; }
    for f in $(ls -S -r "$findings/min" 2>/dev/null | head -n "$max_new"); do
      cp "$findings/min/$f" "$corpus/id-$(sha1sum "$findings/min/$f" | cut -c1-12)"; kept=$((kept + 1))
    done
  fi
  for kind in crashes hangs; do
    for f in "$findings/default/$kind"/id:*; do
      [ -f "$f" ] && cp "$f" "$corpus/$(echo "$kind" | sed "s/es$//; s/s$//")-$(sha1sum "$f" | cut -c1-12)"
    done
  done
  printf "%-11s %8s %9s %10s %8s %8s %7s %6s %6s\n" "$t" "$(stat_of run_time "$stats")" "$(stat_of execs_done "$stats")" \
    "$(stat_of execs_per_sec "$stats")" "$n_in" "$(stat_of corpus_count "$stats")" "$(stat_of saved_crashes "$stats")" "$(stat_of saved_hangs "$stats")" "$kept"
done
