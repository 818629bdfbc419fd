#!/usr/bin/env bash
# Start-SyscallTrace benchmark, side by side with strace in one run on the same workloads:
#   spin: N getppid calls (default 500000) from tests/Fixtures/syscalls.c; tar: tar -cf /dev/null /usr/include.
# Modes: full trace (ours vs strace -f -o /dev/null) and -Syscall openat (ours with seccomp-bpf vs
# strace -f --seccomp-bpf -e trace=openat). Prints wall times, slowdown vs untraced, and ours/strace.
# Each is run unpinned and pinned to CPU 0 (taskset for the whole command, strace included); our tracer
# additionally pins its own thread to the tracee's CPU. Needs root, cc, strace, tar.
# Also prints our peak RSS, to show memory stays flat however many events stream through.
set -uo pipefail
cd "$(dirname "$0")"
N=${N:-500000}
REPEAT=${REPEAT:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -pthread -o "$work/syscalls" ../../tests/Fixtures/syscalls.c || exit 1
dotnet build -c Release -v q -nologo SyscallTraceBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench="dotnet bin/Release/net8.0/SyscallTraceBench.dll"
now() { date +%s.%N; }
# best wall time in ms of REPEAT runs of a command
best_ms() {
  local best=999999999 t0 t1 d
  for _ in $(seq "$REPEAT"); do
    t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
    d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    best=$(awk -v x="$d" -v y="$best" 'BEGIN { print (x < y) ? x : y }')
  done
  echo "$best"
}
ours_ms() { # engine time in a warm process (the JIT warmed by a first run), best of REPEAT
  local line; line=$("$@")
  echo "$line" >&2
  sed -n 's/.*total_ms=\([0-9.]*\).*/\1/p' <<<"$line"
}
printf "%-6s %-8s %-6s %10s %10s %10s %9s %9s %8s\n" work mode pinned base_ms strace_ms ours_ms strace_x ours_x ours/st
run() { # name mode pin -- command...
  local name=$1 mode=$2 pin=$3; shift 4
  local ts=() pinflag=()
  [ "$pin" = yes ] && ts=(taskset -c 0)
  [ "$pin" = no ] && pinflag=(--no-pin)
  local base strace ours
  base=$(best_ms "${ts[@]}" "$@")
  if [ "$mode" = full ]; then
    strace=$(best_ms "${ts[@]}" strace -f -o /dev/null "$@")
    ours=$(ours_ms "${ts[@]}" $bench "${pinflag[@]}" --repeat $((REPEAT + 1)) -- "$@")
  else
    strace=$(best_ms "${ts[@]}" strace -f --seccomp-bpf -e trace=openat -o /dev/null "$@")
    ours=$(ours_ms "${ts[@]}" $bench "${pinflag[@]}" --filter openat --repeat $((REPEAT + 1)) -- "$@")
  fi
  awk -v n="$name" -v m="$mode" -v p="$pin" -v b="$base" -v s="$strace" -v o="$ours" 'BEGIN {
    printf "%-6s %-8s %-6s %10.1f %10.1f %10.1f %8.1fx %8.1fx %7.2f\n", n, m, p, b, s, o, s / b, o / b, o / s }'
}
for pin in yes no; do
  run spin full "$pin" -- "$work/syscalls" spin "$N"
  run spin openat "$pin" -- "$work/syscalls" spin "$N"
  run tar full "$pin" -- tar -cf /dev/null /usr/include
  run tar openat "$pin" -- tar -cf /dev/null /usr/include
done
echo "base/strace: whole process, best of $REPEAT. ours: engine in a warm process, best of $REPEAT after a warm-up run;"
echo "every event is produced (decoded) and consumed. ratios < 1 in ours/st mean less overhead than strace."
