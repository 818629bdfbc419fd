#!/usr/bin/env bash
# Read-CoreDump benchmark: open a core of THREADS threads (16 by default) and produce every thread's
# backtrace with inlined frames and file:line, for 64 MiB, 512 MiB and 2 GiB cores, side by side in
# one run with `gdb -batch -ex 'thread apply all bt'`, `eu-stack --core` (pcs and names) and
# `eu-stack -i -s --core` (inlined frames and source lines: what we print). Prints times and ratios
# (anchor / ours: above 1 means we are faster). Needs ~3 GiB free in $TMPDIR, root.
set -uo pipefail
cd "$(dirname "$0")"
SIZES=${SIZES:-"64 512 2048"}
THREADS=${THREADS:-16}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -g -pthread -o "$work/bigcrash" bigcrash.c || exit 1
dotnet build -c Release -v q -nologo CoreBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/CoreBench.dll
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
best() { local b=999999; for t in "$@"; do b=$(awk -v x="$t" -v y="$b" 'BEGIN { print (x < y) ? x : y }'); done; echo "$b"; }
printf "%-8s %8s %8s %9s %8s %8s %8s %7s %7s %8s %8s %8s %8s %11s\n" size threads gdb_ms eu_ms eu_is_ms ours_ms proc_ms frames lines \
  gdb/ours eu/ours eu_is/ou eu_is/pr same_as_gdb
for mib in $SIZES; do
  dir="$work/$mib"; mkdir -p "$dir"
  # In a shell of its own, so that its "Aborted (core dumped)" goes to /dev/null too.
  sh -c 'cd "$1" && ulimit -c unlimited && "$2" "$3" "$4"; true' sh "$dir" "$work/bigcrash" "$mib" "$THREADS" >/dev/null 2>&1
  core="$dir/core"
  [ -f "$core" ] || { echo "no core for $mib MiB (core_pattern: $(cat /proc/sys/kernel/core_pattern))"; continue; }
  cat "$core" > /dev/null  # warm the page cache for every tool alike
  g=(); e=(); i=(); d=()
  for _ in 1 2 3; do
    t0=$(now); gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'thread apply all bt' "$work/bigcrash" "$core" >/dev/null 2>&1; t1=$(now); g+=("$(ms "$t0" "$t1")")
    t0=$(now); eu-stack --core="$core" -e "$work/bigcrash" >/dev/null 2>&1; t1=$(now); e+=("$(ms "$t0" "$t1")")
    t0=$(now); eu-stack -i -s --core="$core" -e "$work/bigcrash" >/dev/null 2>&1; t1=$(now); i+=("$(ms "$t0" "$t1")")
    t0=$(now); dotnet "$bench" "$core" 0 >/dev/null; t1=$(now); d+=("$(ms "$t0" "$t1")")
  done
  line=$(dotnet "$bench" "$core" 10)
  ours=$(sed -n 's/.*warm_median_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  frames=$(sed -n 's/.*frames=\([0-9]*\).*/\1/p' <<<"$line")
  lines=$(sed -n 's/.*with_line=\([0-9]*\).*/\1/p' <<<"$line")
  gb=$(best "${g[@]}"); eb=$(best "${e[@]}"); ib=$(best "${i[@]}"); db=$(best "${d[@]}")
  # Same frames as gdb (threads that agree / threads), checked on gdb's output for this very core.
  gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'set width 0' -ex 'thread apply all bt' "$work/bigcrash" "$core" > "$work/gdb.bt" 2>/dev/null
  same=$(dotnet "$bench" "$core" --same-as "$work/gdb.bt" | sed -n 's/^same=//p')
  r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
  printf "%-8s %8s %8s %9s %8s %8s %8s %7s %7s %8s %8s %8s %8s %11s\n" "${mib}M" "$THREADS" "$gb" "$eb" "$ib" "$ours" "$db" "$frames" "${lines:-?}" \
    "$(r "$gb" "$ours")" "$(r "$eb" "$ours")" "$(r "$ib" "$ours")" "$(r "$ib" "$db")" "$same"
  rm -f "$core"
done
echo "ours_ms: engine in a warm process (median of 10, fresh reader each); proc_ms: a whole new process (.NET start-up included)."
echo "frames/lines: our frames (inlined ones included) and how many have a file:line; eu_is: eu-stack -i -s; x/ours: x's time over ours."
