#!/usr/bin/env bash
# Start-SyscallTrace side by side with strace and perf trace, in one run, on three workloads:
#   getpid  N getpid calls (getpid.c, N=200000), full trace
#   find    find /usr, only openat (-Syscall openat; strace -e trace=openat; perf trace -e openat)
#   tar     tar -cf /dev/null /usr/include, full trace
# each unpinned and pinned to CPU 0 (taskset for the whole command: tool, tracee and, for ours, the
# pwsh session). Tools: untraced; strace -f; strace -f --seccomp-bpf (it changes nothing without a
# filter, and says so); perf trace; ours with -Engine Bpf and -Engine Ptrace, timed inside a warm pwsh
# (Measure-Command, output to $null: what a user feels) and as a whole pwsh process (startup and
# Import-Module included, shown on their own too); our engine alone in a warm .NET process; and
# "bystander", the workload untraced while an eBPF trace of another, idle process runs: the cost a
# trace puts on every process of the machine, since the raw syscall tracepoints run for all of them.
# Rounds alternate the tools; medians of REPEAT rounds (default 3). "captured" counts the calls each
# tool reported (the named call, or every call), against strace -f -c's count ("expected"; plus
# exit_group, which strace -c leaves out because it never returns); "lost" what ours (LostEventsEvent)
# and perf trace (LOST lines) said they lost. Needs root, cc, strace, perf, tar, taskset, pwsh (PWSH=).
set -uo pipefail
cd "$(dirname "$0")"
N=${N:-200000}
REPEAT=${REPEAT:-3}
PWSH=${PWSH:-pwsh}
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
pids=()
cleanup() { exec 3>&- 4<&- 5>&- 6<&- 2>/dev/null; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
cc -O1 -o "$work/getpid" getpid.c || exit 1
dotnet build -c Release -v q -nologo ../../PSLinuxTrace.sln >/dev/null || { echo "module build failed"; exit 1; }
dotnet build -c Release -v q -nologo SyscallTraceBench.csproj >/dev/null || { echo "bench build failed"; exit 1; }
MODULE=$(realpath ../../out/PSLinuxTrace/PSLinuxTrace.psd1)
bench="dotnet bin/Release/net8.0/SyscallTraceBench.dll"
inv() { LC_ALL=C "$@"; }

declare -A CMD FILTER NAME
CMD[getpid]="$work/getpid $N";                 FILTER[getpid]=-;      NAME[getpid]=getpid
CMD[find]="find /usr";                         FILTER[find]=openat;   NAME[find]=openat
CMD[tar]="tar -cf /dev/null /usr/include";     FILTER[tar]=-;         NAME[tar]='*'
read -r -a WORKS <<<"${WORKS:-getpid find tar}"   # WORKS="getpid tar" runs a subset

now() { date +%s.%N; }
ms_of() { local t0=$1 t1; t1=$(now); inv awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | inv awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The warm pwsh sessions (one unpinned, one on CPU 0), fed one request a line through FIFOs.
start_warm() { # fifo-prefix pin
  mkfifo "$work/$1.in" "$work/$1.out"
  if [ "$2" = yes ]; then taskset -c 0 "$PWSH" -NoProfile -NonInteractive -File warm.ps1 -Module "$MODULE" <"$work/$1.in" >"$work/$1.out" 2>"$work/$1.err" &
  else "$PWSH" -NoProfile -NonInteractive -File warm.ps1 -Module "$MODULE" <"$work/$1.in" >"$work/$1.out" 2>"$work/$1.err" & fi
  pids+=($!)
}
start_warm warm no; exec 3>"$work/warm.in" 4<"$work/warm.out"
start_warm warmpin yes; exec 5>"$work/warmpin.in" 6<"$work/warmpin.out"
ask() { # pin request-fields... -> the answer line
  local pin=$1; shift
  local IFS=$'\t'
  if [ "$pin" = yes ]; then echo "$*" >&5; read -r reply <&6; else echo "$*" >&3; read -r reply <&4; fi
  echo "$reply"
}
warm_ms() { ask "$1" time "$2" "${FILTER[$3]}" "${NAME[$3]}" ${CMD[$3]} | sed -n 's/^ms=//p'; }

# Expected calls, from strace -f -c (untimed).
declare -A EXPECTED
for w in "${WORKS[@]}"; do
  f=(); [ "${FILTER[$w]}" != - ] && f=(-e "trace=${FILTER[$w]}")
  strace -f -c -o "$work/c.txt" "${f[@]}" ${CMD[$w]} >/dev/null 2>&1
  if [ "${NAME[$w]}" = '*' ]; then EXPECTED[$w]=$(( $(inv awk '$NF == "total" { print $4 }' "$work/c.txt") + 1 ))
  else EXPECTED[$w]=$(inv awk -v n="${NAME[$w]}" '$NF == n { print $4 }' "$work/c.txt"); fi
done

count_strace() { # file name -> calls
  if [ "$2" = '*' ]; then grep -cE '^([0-9]+ +)?[a-z0-9_]+\(' "$1"; else grep -cE "^([0-9]+ +)?$2\(" "$1"; fi
}
count_perf() { # file name -> "calls lost"
  local re; if [ "$2" = '*' ]; then re='[a-z0-9_]+'; else re="$2"; fi
  local c l
  c=$(grep -cE "(/[0-9]+ +|\[continued\]: )$re\(" "$1")
  l=$(grep -oE 'LOST [0-9]+ events' "$1" | inv awk '{ s += $2 } END { print s + 0 }')
  echo "$c $l"
}

declare -A T CAPT LOST
add() { T[$1]="${T[$1]:-} $2"; }
TOOLS=(untraced strace strace-seccomp perf bpf-warm ptrace-warm bpf-process ptrace-process bpf-engine ptrace-engine bystander pwsh-startup)
for round in $(seq "$REPEAT"); do
  for pin in no yes; do
    ts=(); [ "$pin" = yes ] && ts=(taskset -c 0)
    pinflag=(); [ "$pin" = no ] && pinflag=(--no-pin)
    for w in "${WORKS[@]}"; do
      k="$w,$pin"
      f=(); [ "${FILTER[$w]}" != - ] && f=(-e "trace=${FILTER[$w]}")
      pf=(); [ "${FILTER[$w]}" != - ] && pf=(-e "${FILTER[$w]}")
      sy=(); [ "${FILTER[$w]}" != - ] && sy=(-Syscall "${FILTER[$w]}")
      t0=$(now); "${ts[@]}" ${CMD[$w]} >/dev/null 2>&1; add "$k,untraced" "$(ms_of "$t0")"
      t0=$(now); "${ts[@]}" strace -f -qq -o "$work/s.txt" "${f[@]}" ${CMD[$w]} >/dev/null 2>&1; add "$k,strace" "$(ms_of "$t0")"
      CAPT[$k,strace]=$(count_strace "$work/s.txt" "${NAME[$w]}")
      t0=$(now); "${ts[@]}" strace -f -qq --seccomp-bpf -o "$work/s.txt" "${f[@]}" ${CMD[$w]} >/dev/null 2>&1; add "$k,strace-seccomp" "$(ms_of "$t0")"
      CAPT[$k,strace-seccomp]=$(count_strace "$work/s.txt" "${NAME[$w]}")
      t0=$(now); "${ts[@]}" perf trace -o "$work/p.txt" "${pf[@]}" -- ${CMD[$w]} >/dev/null 2>&1; add "$k,perf" "$(ms_of "$t0")"
      read -r CAPT[$k,perf] LOST[$k,perf] < <(count_perf "$work/p.txt" "${NAME[$w]}")
      add "$k,bpf-warm" "$(warm_ms "$pin" Bpf "$w")"
      add "$k,ptrace-warm" "$(warm_ms "$pin" Ptrace "$w")"
      for e in Bpf Ptrace; do
        t0=$(now)
        "${ts[@]}" "$PWSH" -NoProfile -NonInteractive -Command "Import-Module '$MODULE'; Start-SyscallTrace -Engine $e ${sy[*]} -RedirectStandardOutput /dev/null -FilePath ${CMD[$w]%% *} -ArgumentList $(printf "'%s'," ${CMD[$w]#* } | sed 's/,$//') -WarningAction SilentlyContinue > \$null" >/dev/null 2>&1
        add "$k,${e,,}-process" "$(ms_of "$t0")"
        fl=(); [ "${FILTER[$w]}" != - ] && fl=(--filter "${FILTER[$w]}")
        line=$("${ts[@]}" $bench --engine "${e,,}" "${pinflag[@]}" "${fl[@]}" --count "${NAME[$w]}" --repeat 2 -- ${CMD[$w]})
        add "$k,${e,,}-engine" "$(sed -n 's/.*total_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
        CAPT[$k,${e,,}-engine]=$(sed -n 's/.* calls=\([0-9]*\).*/\1/p' <<<"$line"); LOST[$k,${e,,}-engine]=$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' <<<"$line")
      done
      line=$("${ts[@]}" $bench --bystander --repeat 2 -- ${CMD[$w]}); add "$k,bystander" "$(sed -n 's/.*total_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
      t0=$(now); "${ts[@]}" "$PWSH" -NoProfile -NonInteractive -Command "Import-Module '$MODULE'" >/dev/null 2>&1; add "$k,pwsh-startup" "$(ms_of "$t0")"
    done
  done
  echo "round $round done" >&2
done

# What ours captured through the cmdlet (one untimed counting run per session and engine).
for pin in no yes; do
  for w in "${WORKS[@]}"; do
    for e in Bpf Ptrace; do
      r=$(ask "$pin" count "$e" "${FILTER[$w]}" "${NAME[$w]}" ${CMD[$w]})
      CAPT[$w,$pin,${e,,}-warm]=$(sed -n 's/.*calls=\([0-9]*\).*/\1/p' <<<"$r"); LOST[$w,$pin,${e,,}-warm]=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$r")
      CAPT[$w,$pin,${e,,}-process]=${CAPT[$w,$pin,${e,,}-warm]}; LOST[$w,$pin,${e,,}-process]=${LOST[$w,$pin,${e,,}-warm]}
    done
  done
done

printf "%-7s %-4s %-16s %10s %9s %9s %9s %7s %8s %8s\n" work pin tool median_ms slowdown captured expected lost /strace /perf
for w in "${WORKS[@]}"; do
  for pin in no yes; do
    k="$w,$pin"
    base=$(median <<<"${T[$k,untraced]}"); st=$(median <<<"${T[$k,strace]}"); pe=$(median <<<"${T[$k,perf]}")
    for tool in "${TOOLS[@]}"; do
      m=$(median <<<"${T[$k,$tool]}")
      inv awk -v w="$w" -v p="$pin" -v t="$tool" -v m="$m" -v b="$base" -v s="$st" -v pe="$pe" -v c="${CAPT[$k,$tool]:--}" -v e="${EXPECTED[$w]}" -v l="${LOST[$k,$tool]:--}" 'BEGIN {
        printf "%-7s %-4s %-16s %10.1f %8.1fx %9s %9s %7s %8.3f %8.3f\n", w, p, t, m, m / b, c, (c == "-" ? "-" : e), l, m / s, m / pe }'
    done
  done
done
echo "median of $REPEAT alternating rounds. *-warm: Measure-Command in a warm pwsh; *-process: a whole pwsh -Command (pwsh-startup: the"
echo "same pwsh with Import-Module only); *-engine: the engine alone in a warm .NET process. /strace and /perf: this row's time over theirs."
