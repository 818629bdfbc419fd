#!/usr/bin/env bash
# Get-ProcSymbol benchmark: the address of malloc in every process, with 200 extra processes
# running, side by side with the reference pipelines in one run:
#   A. one awk pass over /proc/*/maps plus one `nm -D` (the fastest shell pipeline)
#   B. readelf once per process (what people write first)
#   C. ours, warm (engine in a warm process, fresh scanner per call: what a pwsh user feels)
#   D. ours, as a whole process (includes .NET start-up)
# Prints each time and the ratios. Needs root (to read every process), gcc-free; dotnet SDK.
set -uo pipefail
cd "$(dirname "$0")"
N=${N:-200}
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq "$N"); do sleep 100000 & pids+=($!); done

dotnet build -c Release -v q -nologo ProcSymbolBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/ProcSymbolBench.dll
libc=$(readlink -f "$(ldd /bin/sleep | awk '/libc\.so/ {print $3}')")
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# A: awk + nm, best of 5
bestA=999999
for _ in 1 2 3 4 5; do
  t0=$(now)
  off=$(nm -D --defined-only "$libc" | awk '$3 == "malloc" || $3 ~ /^malloc@@/ { print $1; exit }')
  # grep reads every maps file (skipping unreadable ones, which stop mawk); mawk has no strtonum,
  # so bash adds the hex numbers.
  countA=$(grep -H ' 00000000 .*libc\.so' /proc/[0-9]*/maps 2>/dev/null | awk '{ split($1, a, ":"); split(a[2], r, "-"); print a[1], r[1] }' |
    while read -r f s; do printf '%s %x\n' "$f" $((0x$s + 0x$off)); done | wc -l)
  t1=$(now); a=$(ms "$t0" "$t1"); bestA=$(awk -v x="$a" -v y="$bestA" 'BEGIN { print (x < y) ? x : y }')
done

# B: readelf per process, once
t0=$(now)
countB=0
for m in /proc/[0-9]*/maps; do
  [ -r "$m" ] || continue
  f=$(awk 'index($6, "libc.so") && $3 == "00000000" { print $6; exit }' "$m" 2>/dev/null) || continue
  [ -n "$f" ] || continue
  readelf -Ws --dyn-syms "$f" | awk '$8 == "malloc" || $8 ~ /^malloc@@/ { print $2; exit }' >/dev/null
  countB=$((countB + 1))
done
t1=$(now); b=$(ms "$t0" "$t1")

# C: ours warm
c_line=$(dotnet "$bench" malloc 'libc.so*' 30)
c=$(sed -n 's/.*warm_median_ms=\([0-9.]*\).*/\1/p' <<<"$c_line")

# D: ours, whole process, best of 3
bestD=999999
for _ in 1 2 3; do
  t0=$(now); dotnet "$bench" malloc 'libc.so*' 0 >/dev/null; t1=$(now)
  d=$(ms "$t0" "$t1"); bestD=$(awk -v x="$d" -v y="$bestD" 'BEGIN { print (x < y) ? x : y }')
done

procs=$(ls -d /proc/[0-9]* | wc -l)
echo "processes on the machine: $procs (of which $N sleep fixtures); libc: $libc"
echo "A awk+nm pipeline:        ${bestA} ms  ($countA mappings)"
echo "B readelf per process:    ${b} ms  ($countB processes)"
echo "C ours, warm (median/30): ${c} ms  [$c_line]"
echo "D ours, whole process:    ${bestD} ms"
awk -v a="$bestA" -v b="$b" -v c="$c" -v d="$bestD" 'BEGIN {
  printf "ratios: A/C = %.1fx   B/C = %.1fx   A/D = %.2fx   B/D = %.1fx\n", a / c, b / c, a / d, b / d }'
