#!/usr/bin/env bash
# Get-ProcessStack benchmark: every thread's backtrace of a running process with 8 and 64 parked threads,
# side by side in one run with `eu-stack -p` and `gdb -p PID -batch -ex 'thread apply all bt'`.
# total: each tool as a whole process (ours: the engine in a new .NET process, JIT and libc's parse included),
# and ours again warm (the same symbolizer's second and later captures, as in a pipeline), and Get-ProcessStack
# in a warm pwsh (Measure-Command of its second run: the tracer process's start and the cmdlet included).
# Needs the module built (dotnet build PSLinuxTrace.sln) and `dotnet tool restore` done, for `dotnet pwsh`.
# paused: ours as the engine reports it; stall: the longest the target's own probe thread (1 ms sleeps)
# waited to wake during that tool's runs, which is what each tool cost the process. With SPLIT=1 the target
# runs on CPU 0 and every tool on CPU 1 (taskset), so that a tool's own start-up (.NET's JIT) does not show as
# a stall, at the price of a cross-CPU wake-up for every ptrace stop (which eu-stack, one thread at a time, pays
# most); without it the scheduler places them.
# eu-stack stops and unwinds one thread at a time (each thread's stall is its own unwind, and the threads are
# not caught at one instant); gdb and we stop every thread at once. Medians of RUNS (default 5).
# Needs root, cc, eu-stack (elfutils), gdb.
set -uo pipefail
cd "$(dirname "$0")"
if [ "${SPLIT:-0}" = 1 ]; then on0=(taskset -c 0); on1=(taskset -c 1); else on0=(); on1=(); fi
THREADS=${THREADS:-"8 64"}
RUNS=${RUNS:-5}
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cc -O1 -g -fno-omit-frame-pointer -pthread -o "$work/parked" parked.c || exit 1
dotnet build -c Release -v q -nologo StackBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/StackBench.dll
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%-7s %-14s %9s %9s %9s %10s %10s\n" threads tool total_ms paused_ms stall_ms vs_eu_total vs_eu_stall
for n in $THREADS; do
  fifo="$work/in.$n"; out="$work/out.$n"; mkfifo "$fifo"
  "${on0[@]}" "$work/parked" "$n" < "$fifo" > "$out" & pid=$!; pids+=($pid)
  exec {keep}>"$fifo"
  until grep -q ready "$out" 2>/dev/null; do sleep 0.1; done
  stall() { sleep 0.05; echo >&$keep; sleep 0.1; awk -F= '/stall_us/ { v = $2 } END { printf "%.2f", v / 1000 }' "$out"; }
  stall >/dev/null
  declare -A total=() paused=() stalled=()
  for tool in eu-stack gdb ours ours-warm ours-pwsh; do
    t=() p=() s=()
    for _ in $(seq "$RUNS"); do
      stall >/dev/null
      case $tool in
        eu-stack) t0=$(now); "${on1[@]}" eu-stack -p "$pid" >/dev/null 2>&1; t1=$(now); t+=("$(ms "$t0" "$t1")");;
        gdb) t0=$(now); "${on1[@]}" gdb -nx -batch -iex 'set debuginfod enabled off' -p "$pid" -ex 'thread apply all bt' >/dev/null 2>&1; t1=$(now); t+=("$(ms "$t0" "$t1")");;
        ours) t0=$(now); line=$("${on1[@]}" dotnet "$bench" "$pid" 1); t1=$(now); t+=("$(ms "$t0" "$t1")"); p+=("$(sed -n 's/.*paused_ms=\([0-9.]*\).*/\1/p' <<<"$line")");;
        ours-warm) line=$("${on1[@]}" dotnet "$bench" "$pid" 4 | tail -1); t+=("$(sed -n 's/.*total_ms=\([0-9.]*\).*/\1/p' <<<"$line")"); p+=("$(sed -n 's/.*paused_ms=\([0-9.]*\).*/\1/p' <<<"$line")");;
        ours-pwsh) line=$("${on1[@]}" dotnet pwsh -NoProfile -c "Import-Module ../../out/PSLinuxTrace/PSLinuxTrace.psd1; \$null = Get-ProcessStack -Id $pid; \$s = \$null
          \$m = Measure-Command { \$s = Get-ProcessStack -Id $pid }; 'total_ms={0:F2} paused_ms={1:F2}' -f \$m.TotalMilliseconds, \$s.PausedFor.TotalMilliseconds")
          t+=("$(sed -n 's/.*total_ms=\([0-9.]*\).*/\1/p' <<<"$line")"); p+=("$(sed -n 's/.*paused_ms=\([0-9.]*\).*/\1/p' <<<"$line")");;
      esac
      s+=("$(stall)")
    done
    total[$tool]=$(printf "%s\n" "${t[@]}" | median)
    stalled[$tool]=$(printf "%s\n" "${s[@]}" | median)
    paused[$tool]=$( [ ${#p[@]} -gt 0 ] && printf "%s\n" "${p[@]}" | median || echo "-")
  done
  for tool in eu-stack gdb ours ours-warm ours-pwsh; do
    awk -v n="$n" -v tool="$tool" -v t="${total[$tool]}" -v p="${paused[$tool]}" -v s="${stalled[$tool]}" \
        -v et="${total[eu-stack]}" -v es="${stalled[eu-stack]}" 'BEGIN {
      printf "%-7s %-14s %9.2f %9s %9.2f %9.2fx %9.2fx\n", n, tool, t, p, s, t / et, (s > 0 ? s / es : 0) }'
  done
done
echo "placement: $([ "${SPLIT:-0}" = 1 ] && echo 'target on CPU 0, tools on CPU 1' || echo 'free'); medians of $RUNS runs; vs_eu_*: ours or gdb divided by eu-stack's (below 1 is better). The 'ours-warm' stall"
echo "row is the last of 4 captures in one process; eu-stack's and gdb's stall is their whole run, as they keep the process stopped."
