#!/usr/bin/env bash
# Save-ProcessSnapshot benchmark: processes with 64 MiB, 512 MiB and 2 GiB of dirtied memory,
# snapshotted by gcore and by us (both methods: CloneTwin, which Auto uses up to 4 GiB of anonymous memory, and
# WriteTracked) in one run. gcore stops the target for its whole run, so its paused time is its total
# time; ours report PausedFor. stall is the longest the target's own probe thread (1 ms sleeps) waited
# to wake during that tool's runs: what the snapshot really cost the process, hypervisor time included.
# A floor row (floor.c) times one process writing as much of its own memory into a new file: the bound on
# any tool's speedup over gcore on this machine. Before every timed run, warm.c touches and frees 3x the size in
# memory, so that no tool's page cache lands on memory the VM's host has taken back (see warm.c).
# Prints MB/s, times and ratios. Needs root, ~5 GiB free in $TMPDIR and ~7 GiB of free memory.
set -uo pipefail
cd "$(dirname "$0")"
SIZES=${SIZES:-"64 512 2048"}
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cc -O1 -pthread -o "$work/dirty" dirty.c || exit 1
cc -O2 -o "$work/floor" floor.c || exit 1
cc -O2 -o "$work/warm" warm.c || exit 1
dotnet build -c Release -v q -nologo SnapshotBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/SnapshotBench.dll
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
printf "%-6s %-12s %9s %8s %10s %10s %9s %11s\n" size tool total_ms MB/s paused_ms stall_ms speedup pause_ratio
for mib in $SIZES; do
  fifo="$work/in.$mib"; out="$work/out.$mib"; mkfifo "$fifo"
  "$work/dirty" "$mib" < "$fifo" > "$out" & pid=$!; pids+=($pid)
  exec {keep}>"$fifo"   # hold stdin open
  until grep -q ready "$out" 2>/dev/null; do sleep 0.1; done
  stall() { sleep 0.5; echo >&$keep; sleep 0.2; awk -F= '/stall_us/ { v = $2 } END { printf "%.1f", v / 1000 }' "$out"; }
  stall >/dev/null
  # The floor first (best of 4: the first write of a run pays for fresh memory), so that gcore, not we, gets the
  # memory it frees at its exit.
  # Before each timed run: fresh memory for its page cache, then a new start for the stall probe (see warm.c).
  warm() { "$work/warm" $((3 * mib + 256)); echo >&$keep; sleep 0.05; }
  warm
  fl=$(field floor_ms "$("$work/floor" "$mib" "$work/floor.out" 4)")
  best=999999 gstall=0
  for _ in 1 2; do
    warm
    t0=$(now); gcore -o "$work/gcore" "$pid" >/dev/null 2>&1; t1=$(now)
    g=$(ms "$t0" "$t1"); best=$(awk -v x="$g" -v y="$best" 'BEGIN { print (x < y) ? x : y }')
    rm -f "$work/gcore.$pid"
    gstall=$(awk -v x="$(stall)" -v y="$gstall" 'BEGIN { print (x > y) ? x : y }') # warm() restarts the probe
  done
  mem=0
  printf "%-6s %-12s %9.1f %8s %10.1f %10s %9s %11s\n" "${mib}M" gcore "$best" "-" "$best" "$gstall" "" ""
  awk -v s="${mib}M" -v g="$best" -v f="$fl" -v m="$mib" 'BEGIN {
    printf "%-6s %-12s %9.1f %8.0f %10s %10s %8.1fx %11s\n", s, "floor", f, m / (f / 1000), "-", "-", g / f, "" }'
  for method in WriteTracked CloneTwin; do
    warm
    line=$(SNAPSHOT_METHOD=$method dotnet "$bench" "$pid" "$work/ours.core" 3)
    s=$(stall)
    rm -f "$work/ours.core"
    ours=$(field total_ms "$line"); paused=$(field paused_ms "$line"); mem=$(field memory_mib "$line")
    awk -v s="${mib}M" -v t="$method" -v g="$best" -v o="$ours" -v p="$paused" -v m="$mem" -v st="$s" 'BEGIN {
      printf "%-6s %-12s %9.1f %8.0f %10.2f %10s %8.1fx %10.0fx\n", s, t, o, m / (o / 1000), p, st, g / o, g / p }'
  done
  awk -v s="${mib}M" -v g="$best" -v m="$mem" 'BEGIN { printf "%-6s %-12s MB/s %.0f\n", s, "gcore", m / (g / 1000) }'
  exec {keep}>&-
  kill "$pid" 2>/dev/null
done
echo "every timed run starts right after warm.c has touched and freed 3x the size in memory: on these VMs the host takes"
echo "freed memory back within seconds, and a tool whose page cache lands on such memory runs several times slower."
echo "ours: engine in a warm process, best of 2 after a warm-up; gcore: best of 2. speedup and pause_ratio: gcore's / ours."
echo "stall_ms: the longest wake-up delay the target itself saw across that tool's runs (about 1 ms plus any stop)."
echo "floor: one process writing that much of its own memory into a new file here (floor.c), best of 4: the least any"
echo "tool that writes the core can take; its speedup column is gcore's / floor's, the most any such tool could reach."
