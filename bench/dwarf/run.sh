#!/usr/bin/env bash
# DWARF source lookups: N addresses of a big binary resolved by `addr2line -f -i`, `eu-addr2line -f -i`
# and DwarfSourceInfo, side by side in one run, each a whole process reading the addresses from
# stdin (best of 5); plus our in-process times (load + first lookup, all lookups cold and warm), as a
# pwsh session that has the engine loaded sees them (a2l/cold: addr2line's process against that).
# Prints times, ratios, and how many addresses our frames share with addr2line's.
# Default file: libc's separate debug file (libc6-dbg). Usage: run.sh [FILE] (SIZES="1 100 2000 20000").
set -uo pipefail
cd "$(dirname "$0")"
SIZES=${SIZES:-"1 100 2000 20000"}
file=${1:-}
if [ -z "$file" ]; then
  libc=$(readlink -f /lib/x86_64-linux-gnu/libc.so.6)
  id=$(readelf -n "$libc" | awk '/Build ID/ { print $3 }')
  file=/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
fi
[ -f "$file" ] || { echo "no such file: $file (install libc6-dbg, or pass a file with DWARF)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dotnet build -c Release -v q -nologo DwarfBench.csproj >/dev/null || { echo "build failed"; exit 1; }
bench=bin/Release/net8.0/DwarfBench.dll
best() { local b=999999; for t in "$@"; do b=$(awk -v x="$t" -v y="$b" 'BEGIN { print (x < y) ? x : y }'); done; echo "$b"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
# measure OUT CMD...: runs CMD with the addresses on stdin; sets wall and cpu (user + sys) in ms.
measure() {
  local out=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" < "$work/addrs" > "$out" 2>/dev/null
  wall=$(awk '{ printf "%.0f", $1 * 1000 }' "$work/time"); cpu=$(awk '{ printf "%.0f", ($2 + $3) * 1000 }' "$work/time")
}
# Addresses: inside the file's functions (FUNC symbols with a size), at random offsets, fixed seed.
readelf -sW "$file" 2>/dev/null | awk '$4 == "FUNC" && $3 > 1 { print $2, $3 }' | sort -u > "$work/functions"
echo "file: $file ($(stat -c %s "$file") bytes, $(wc -l < "$work/functions") functions)"
cat "$file" > /dev/null  # the page cache warm for every tool alike
: > "$work/addrs"
st=(); for _ in 1 2 3 4 5; do measure /dev/null dotnet "$bench" resolve "$file"; st+=("$wall"); done
echo "our process with no address (.NET start-up, open): $(best "${st[@]}") ms"
printf "%-6s %13s %13s %13s %8s %8s %8s %9s %9s %9s %9s %11s\n" N a2l_ms/cpu eu_ms/cpu ours_ms/cpu load_ms cold_ms warm_ms a2l/ours eu/ours cpu_a2l/ours a2l/cold same_as_a2l
for n in $SIZES; do
  python3 - "$n" "$work/functions" > "$work/addrs" <<'PY'
import random, sys
random.seed(15)
functions = [line.split() for line in open(sys.argv[2])]
for _ in range(int(sys.argv[1])):
    value, size = random.choice(functions)
    print(hex(int(value, 16) + random.randrange(int(size))))
PY
  a=(); e=(); d=(); ac=(); ec=(); dc=()
  for _ in 1 2 3 4 5; do
    measure "$work/a2l" addr2line -a -f -i -e "$file"; a+=("$wall"); ac+=("$cpu")
    measure /dev/null eu-addr2line -f -i -e "$file"; e+=("$wall"); ec+=("$cpu")
    measure /dev/null dotnet "$bench" resolve "$file"; d+=("$wall"); dc+=("$cpu")
  done
  ab=$(best "${a[@]}"); eb=$(best "${e[@]}"); db=$(best "${d[@]}")
  acb=$(best "${ac[@]}"); ecb=$(best "${ec[@]}"); dcb=$(best "${dc[@]}")
  inproc=$(dotnet "$bench" time "$file" 7 < "$work/addrs")
  load=$(sed -n 's/.*load_first_ms=\([0-9.]*\).*/\1/p' <<<"$inproc")
  cold=$(sed -n 's/.*cold_all_ms=\([0-9.]*\).*/\1/p' <<<"$inproc")
  warm=$(sed -n 's/.*warm_all_ms=\([0-9.]*\).*/\1/p' <<<"$inproc")
  same=$(dotnet "$bench" same "$file" "$work/a2l" < "$work/addrs" | sed -n 's/^same=//p')
  printf "%-6s %13s %13s %13s %8s %8s %8s %9s %9s %9s %9s %11s\n" "$n" "$ab/$acb" "$eb/$ecb" "$db/$dcb" "$load" "$cold" "$warm" \
    "$(ratio "$ab" "$db")" "$(ratio "$eb" "$db")" "$(ratio "$acb" "$dcb")" "$(ratio "$ab" "$cold")" "$same"
done
echo "a2l/eu/ours_ms/cpu: a whole process, wall and user+sys CPU (ours includes .NET start-up, above; CPU"
echo "counts the JIT's threads too, and is the steadier figure on a busy machine); load_ms: Load + the first lookup"
echo "in a warm process; cold_ms: N lookups on a fresh DwarfSourceInfo; warm_ms: the same N again (units cached)."
echo "same_as_a2l differs where binutils 2.40 is wrong (see tests/PSLinuxTrace.Engine.Tests/Dwarf/CrossCheck.cs)."
