#!/usr/bin/env bash
# Save-ProcessSnapshot benchmark: processes with 64 MiB, 512 MiB and 2 GiB of dirtied memory,
# snapshotted by gcore and by us in one run. gcore stops the target for its whole run, so its
# paused time is its total time; ours reports PausedFor. Prints MB/s, times and ratios.
# Needs root and ~5 GiB free in $TMPDIR.
set -uo pipefail
cd "$(dirname "$0")"
SIZES=${SIZES:-"64 512 2048"}
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cc -O1 -o "$work/dirty" dirty.c || exit 1
dotnet build -c Release -v q -nologo SnapshotBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/SnapshotBench.dll
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
printf "%-7s %10s %9s %10s %10s %9s %11s %13s\n" size gcore_ms gcore_MBs ours_ms ours_MBs speedup paused_ms paused_ratio
for mib in $SIZES; do
  fifo="$work/in.$mib"; mkfifo "$fifo"
  "$work/dirty" "$mib" < "$fifo" > "$work/out.$mib" & pid=$!; pids+=($pid)
  exec {keep}>"$fifo"   # hold stdin open
  until grep -q ready "$work/out.$mib" 2>/dev/null; do sleep 0.1; done
  best=999999
  for _ in 1 2; do
    t0=$(now); gcore -o "$work/gcore" "$pid" >/dev/null 2>&1; t1=$(now)
    g=$(ms "$t0" "$t1"); best=$(awk -v x="$g" -v y="$best" 'BEGIN { print (x < y) ? x : y }')
    rm -f "$work/gcore.$pid"
  done
  line=$(dotnet "$bench" "$pid" "$work/ours.core" 3)
  rm -f "$work/ours.core"
  ours=$(sed -n 's/.*total_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  paused=$(sed -n 's/.*paused_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  mem=$(sed -n 's/.*memory_mib=\([0-9.]*\).*/\1/p' <<<"$line")
  awk -v s="$mib" -v g="$best" -v o="$ours" -v p="$paused" -v m="$mem" 'BEGIN {
    printf "%-7s %10.1f %9.0f %10.1f %10.0f %8.1fx %11.2f %12.0fx\n", s "M", g, m / (g / 1000), o, m / (o / 1000), g / o, p, g / p }'
  exec {keep}>&-
  kill "$pid" 2>/dev/null
done
echo "ours_ms: engine in a warm process, best of 2 after a warm-up; gcore: best of 2. paused_ratio = gcore's pause / ours."
