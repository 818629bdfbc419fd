#!/usr/bin/env bash
# Start-SyscallTrace -StackTrace side by side with strace -f -k, in one run: N getpid calls (getpid.c,
# N=20000 by default), each with the user stack that made it. Rows: untraced; strace -f -k (output to a
# file); ours in a warm pwsh (Measure-Command { Start-SyscallTrace -StackTrace ... > $null }: what a
# user feels); ours as a whole pwsh process (startup and Import-Module included); and the engine
# alone in a warm .NET process (SyscallTraceBench --stack 256). Rounds alternate the tools; medians of
# REPEAT rounds (default 3), and each row's time over strace -k's. "stacks" counts the calls that came
# with a stack (strace: the getpid lines followed by at least one " > " frame line).
# Needs root, cc, strace, pwsh (PWSH=).
set -uo pipefail
cd "$(dirname "$0")"
N=${N:-20000}
REPEAT=${REPEAT:-3}
PWSH=${PWSH:-pwsh}
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -g -o "$work/getpid" getpid.c || exit 1
dotnet build -c Release -v q -nologo ../../PSLinuxTrace.sln >/dev/null || { echo "module build failed"; exit 1; }
dotnet build -c Release -v q -nologo SyscallTraceBench.csproj >/dev/null || { echo "bench build failed"; exit 1; }
MODULE=$(realpath ../../out/PSLinuxTrace/PSLinuxTrace.psd1)
bench="dotnet bin/Release/net8.0/SyscallTraceBench.dll"
inv() { LC_ALL=C "$@"; }
now() { date +%s.%N; }
ms_of() { local t0=$1 t1; t1=$(now); inv awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | inv awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One warm pwsh, fed "time" or "count" a line through FIFOs.
mkfifo "$work/in" "$work/out"
"$PWSH" -NoProfile -NonInteractive -Command "
  Import-Module '$MODULE'
  \$inv = [cultureinfo]::InvariantCulture
  while (\$null -ne (\$line = [Console]::In.ReadLine())) {
    if (\$line -eq 'time') {
      \$t = Measure-Command { Start-SyscallTrace -FilePath '$work/getpid' -ArgumentList $N -Syscall getpid -StackTrace -RedirectStandardOutput /dev/null > \$null }
      [Console]::Out.WriteLine('ms=' + \$t.TotalMilliseconds.ToString('F1', \$inv))
    } else {
      \$e = @(Start-SyscallTrace -FilePath '$work/getpid' -ArgumentList $N -Syscall getpid -StackTrace -RedirectStandardOutput /dev/null | Where-Object Name -eq getpid)
      [Console]::Out.WriteLine(\"calls=\$(\$e.Count) stacks=\$(@(\$e | Where-Object { \$_.StackTrace.Count -gt 0 }).Count) main=\$(@(\$e | Where-Object { \$_.StackTrace.Symbol -contains 'main' }).Count)\")
    }
    [Console]::Out.Flush()
  }" <"$work/in" >"$work/out" 2>"$work/err" &
warm=$!
exec 3>"$work/in" 4<"$work/out"
ask() { echo "$1" >&3; read -r reply <&4; echo "$reply"; }
ask time >/dev/null   # warms the JIT and the symbol caches once

declare -A T
add() { T[$1]="${T[$1]:-} $2"; }
for round in $(seq "$REPEAT"); do
  t0=$(now); "$work/getpid" "$N" >/dev/null; add untraced "$(ms_of "$t0")"
  t0=$(now); strace -f -qq -k -e trace=getpid -o "$work/s.txt" "$work/getpid" "$N" >/dev/null 2>&1; add strace-k "$(ms_of "$t0")"
  add ours-warm "$(ask time | sed -n 's/^ms=//p')"
  t0=$(now)
  "$PWSH" -NoProfile -NonInteractive -Command "Import-Module '$MODULE'; Start-SyscallTrace -FilePath '$work/getpid' -ArgumentList $N -Syscall getpid -StackTrace -RedirectStandardOutput /dev/null > \$null" >/dev/null 2>&1
  add ours-process "$(ms_of "$t0")"
  line=$($bench --engine ptrace --filter getpid --count getpid --stack 256 --repeat 2 -- "$work/getpid" "$N")
  add ours-engine "$(sed -n 's/.*total_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  echo "round $round done" >&2
done
strace_stacks=$(inv awk '/^([0-9]+ +)?getpid\(/ { c = 1; next } c && /^ *> / { n++; c = 0 } END { print n + 0 }' "$work/s.txt")
ours=$(ask count)
exec 3>&- 4<&-
wait "$warm"

st=$(median <<<"${T[strace-k]}"); base=$(median <<<"${T[untraced]}")
printf "%-13s %10s %9s %9s\n" tool median_ms slowdown /strace-k
for tool in untraced strace-k ours-warm ours-process ours-engine; do
  m=$(median <<<"${T[$tool]}")
  inv awk -v t="$tool" -v m="$m" -v b="$base" -v s="$st" 'BEGIN { printf "%-13s %10.1f %8.1fx %9.3f\n", t, m, m / b, m / s }'
done
echo "calls with a stack: strace -k $strace_stacks of $N; ours $ours"
echo "median of $REPEAT alternating rounds of $N getpid calls, each with its user stack."
