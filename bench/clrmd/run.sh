#!/usr/bin/env bash
# Managed frames' cost: Get-ProcessStack's engine on a running pwsh (a .NET process: every thread of it) with
# managed frames (ClrMD opened over the capture with the DAC, each thread's managed stack walked and merged)
# and with native frames only, side by side in one run with `eu-stack -p` (native frames only, ?? in JIT code;
# no dotnet-stack or dotnet-dump is installed here to compare managed frames with). cold: a new process per
# capture (JIT, libc's and libcoreclr's parse, ClrMD's and the DAC's load included); warm: the 4th capture in
# one process (the symbolizer's caches warm; the ClrMD worker process is started, and ClrMD and the DAC opened,
# again for every capture, as the runtime's state is the process's at that moment). Medians of RUNS (default 5); ratios to native-only and
# to eu-stack. Needs root, eu-stack, the module built (dotnet build PSLinuxTrace.sln).
set -uo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-5}
PWSH=${PWSH:-/work/tools/pwsh}
"$PWSH" -NoProfile -c 'Start-Sleep 600' >/dev/null 2>&1 & shim=$!
trap 'kill $shim $pid 2>/dev/null; wait 2>/dev/null' EXIT
dotnet build -c Release -v q -nologo ClrMdBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/ClrMdBench.dll
# ClrMD runs in the module's worker process (pslinuxtrace-clrmd): the one the module build put in out/.
export PSLINUXTRACE_CLRMD_WORKER=$(realpath ../../out/PSLinuxTrace/pslinuxtrace-clrmd.dll)
[ -f "$PSLINUXTRACE_CLRMD_WORKER" ] || { echo "build the module first (dotnet build PSLinuxTrace.sln)"; exit 1; }
sleep 3 # pwsh up and sleeping
# A dotnet-tool pwsh is a shim that runs the real pwsh as its child: the target is the child when there is one.
pid=$(pgrep -P "$shim" | head -1); pid=${pid:-$shim}
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
declare -A res=() info=()
for tool in eu-stack native-cold managed-cold native-warm managed-warm; do
  t=()
  for _ in $(seq "$RUNS"); do
    case $tool in
      eu-stack) t0=$(now); eu-stack -p "$pid" >/dev/null 2>&1; t1=$(now); t+=("$(ms "$t0" "$t1")");;
      *-cold) t0=$(now); line=$(dotnet "$bench" "$pid" 1 "${tool%-cold}"); t1=$(now); t+=("$(ms "$t0" "$t1")"); info[$tool]=$line;;
      *-warm) line=$(dotnet "$bench" "$pid" 4 "${tool%-warm}" | tail -1); t+=("$(field total_ms <<<"$line")"); info[$tool]=$line;;
    esac
  done
  res[$tool]=$(printf "%s\n" "${t[@]}" | median)
done
printf "%-13s %9s %11s %10s %s\n" tool total_ms vs_native vs_eu_stack "last run"
for tool in eu-stack native-cold managed-cold native-warm managed-warm; do
  base=${res[native-${tool#*-}]:-${res[eu-stack]}}
  awk -v tool="$tool" -v t="${res[$tool]}" -v b="$base" -v e="${res[eu-stack]}" -v i="${info[$tool]:-}" 'BEGIN {
    printf "%-13s %9.2f %10.2fx %9.2fx %s\n", tool, t, t / b, t / e, i }'
done
echo "target: pwsh $($PWSH -NoProfile -c '$PSVersionTable.PSVersion.ToString()' 2>/dev/null) pid $pid, $(ls /proc/$pid/task | wc -l) threads; medians of $RUNS runs."
