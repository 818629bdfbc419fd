#!/usr/bin/env bash
# Watch-Exec benchmark: an exec storm (N posix_spawn+wait of /bin/true, one after the other) run
#   0. with no watcher (baseline),
#   1. with our watcher (the Watch-Exec engine in bench/exec, no filter, default 16 MiB ring),
#   2. with a bpftrace script on the same tracepoints that records the same fields
#      (pid, tid, ppid, uid, gid, comm, filename, argv, result),
# in one run. Prints, per watcher: events captured vs expected, storm slowdown vs the baseline,
# and the watcher's CPU time (utime+stime from /proc/PID/stat) during the storm.
# Needs root, cc, dotnet, bpftrace. N=10000 execs by default, in P=1 storm processes.
set -uo pipefail
cd "$(dirname "$0")"
N=${N:-10000}
P=${P:-1}   # storms side by side (P=4 makes bursts that a slow consumer cannot keep up with)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cc -O2 -o "$work/exec_helper" ../../tests/Fixtures/exec_helper.c || { echo "cc failed"; exit 1; }
dotnet build -c Release -v q -nologo ExecBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/ExecBench.dll
tck=$(getconf CLK_TCK)
now() { date +%s.%N; }
cpu_ms() { awk -v t="$tck" '{ print ($14 + $15) * 1000 / t }' "/proc/$1/stat"; }
storm() { # marker -> seconds; P storms side by side, N/P execs each
  local t0 t1 i sp=(); t0=$(now)
  for i in $(seq "$P"); do "$work/exec_helper" storm $((N / P)) /bin/true "$1" & sp+=($!); done
  wait "${sp[@]}"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
wait_for() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2 in $1"; return 1; }

# 0. baseline
base=$(storm "pslt-base-$$")

# 1. ours
m1="pslt-ours-$$"
dotnet "$bench" "$m1" "$work/stop1" > "$work/ours.out" 2>&1 &
ours=$!; pids+=("$ours")
wait_for "$work/ours.out" ready || exit 1
c0=$(cpu_ms "$ours"); t_ours=$(storm "$m1"); c1=$(cpu_ms "$ours")
touch "$work/stop1"; wait "$ours"
ours_line=$(tail -1 "$work/ours.out")
ours_captured=$(sed -n 's/.*captured=\([0-9]*\).*/\1/p' <<<"$ours_line")
ours_lost=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$ours_line")
ours_cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.0f", b - a }')

# 2. bpftrace: same fields; argv through join() (bpftrace's own limits apply)
m2="pslt-bpft-$$"
cat > "$work/exec.bt" <<'BT'
tracepoint:syscalls:sys_enter_execve, tracepoint:syscalls:sys_enter_execveat {
  printf("E %d %d %d %d %d %s %s ", pid, tid, curtask->real_parent->tgid, uid, gid, comm, str(args->filename));
  join(args->argv);
}
tracepoint:syscalls:sys_exit_execve, tracepoint:syscalls:sys_exit_execveat {
  printf("X %d %d %d\n", pid, tid, args->ret);
}
BT
# bpftrace prints ready from BEGIN once its probes are attached.
{ echo 'BEGIN { printf("ready\n"); }'; cat "$work/exec.bt"; } > "$work/exec2.bt"
bpftrace -o "$work/bpftrace.out" "$work/exec2.bt" 2>"$work/bpftrace.err" &
bt=$!; pids+=("$bt")
wait_for "$work/bpftrace.out" ready || { cat "$work/bpftrace.err"; exit 1; }
c0=$(cpu_ms "$bt"); t_bt=$(storm "$m2"); c1=$(cpu_ms "$bt")
sleep 1; kill -INT "$bt"; wait "$bt"
bt_captured=$(grep -c -- " $m2 " "$work/bpftrace.out")
bt_lost=$(grep -o 'Lost [0-9]* events' "$work/bpftrace.out" "$work/bpftrace.err" | awk '{ s += $2 } END { print s + 0 }')
bt_cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.0f", b - a }')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo "exec storm: $N execs of /bin/true (posix_spawn + waitpid) in $P storm process(es); machine: $(nproc) CPUs, shared"
printf '%-10s %10s %10s %10s %12s %14s\n' watcher captured lost storm_s slowdown watcher_cpu_ms
printf '%-10s %10s %10s %10s %12s %14s\n' none - - "$base" 1.00 -
printf '%-10s %10s %10s %10s %12s %14s\n' ours "$ours_captured/$N" "$ours_lost" "$t_ours" "$(ratio "$t_ours" "$base")" "$ours_cpu"
printf '%-10s %10s %10s %10s %12s %14s\n' bpftrace "$bt_captured/$N" "$bt_lost" "$t_bt" "$(ratio "$t_bt" "$base")" "$bt_cpu"
echo "ratios ours/bpftrace: storm time $(ratio "$t_ours" "$t_bt"), watcher CPU $(ratio "$ours_cpu" "$bt_cpu")"
