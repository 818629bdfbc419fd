#!/usr/bin/env bash
# Read-CoreDump on a big core (issue 15): a kernel core of 2 GiB of heap and 64 threads, read side by
# side with `gdb -batch -ex 'thread apply all bt'` and `eu-stack --core` in one run, ROUNDS alternating
# rounds, medians. For each: time to the first output (our first CoreDump object; gdb's and eu-stack's
# first line), total time with every thread's symbolized stack, and peak RSS. Then the same core
# compressed as systemd-coredump stores it (zstd; lz4; xz with XZ=1, slow to make), read by us, against
# what coredumpctl does for gdb and eu-stack (decompress to a file, then read that) and against the
# decompression alone. Not CI: needs ~8 GiB free in $TMPDIR, root (core_pattern), a few minutes.
set -uo pipefail
cd "$(dirname "$0")"
MIB=${MIB:-2048} THREADS=${THREADS:-64} ROUNDS=${ROUNDS:-5}
here=$PWD repo=$(cd ../.. && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -g -pthread -o "$work/bigcrash" bigcrash.c || exit 1
dotnet build -c Release -v q -nologo CoreBench.csproj >/dev/null || { echo "build failed"; exit 1; }
dotnet build -v q -nologo "$repo/PSLinuxTrace.sln" >/dev/null || { echo "module build failed"; exit 1; }
bench="dotnet $here/bin/Release/net8.0/CoreBench.dll"
pwsh=${PWSH:-/work/tools/pwsh}

pattern=$(cat /proc/sys/kernel/core_pattern)
[ "$pattern" = core ] || echo core > /proc/sys/kernel/core_pattern
(cd "$work" && ulimit -c unlimited && ./bigcrash "$MIB" "$THREADS" text 2>/dev/null)
[ "$pattern" = core ] || echo "$pattern" > /proc/sys/kernel/core_pattern
core=$work/core exe=$work/bigcrash
[ -f "$core" ] || { echo "no core (core_pattern: $pattern)"; exit 1; }
zstd -q -T0 "$core" -o "$core.zst"; lz4 -q "$core" "$core.lz4"
[ "${XZ:-0}" = 1 ] && xz -T0 -1 -c "$core" > "$core.xz"
echo "core: $(($(stat -c %s "$core") >> 20)) MiB, $THREADS threads; zst $(($(stat -c %s "$core.zst") >> 20)) MiB, lz4 $(($(stat -c %s "$core.lz4") >> 20)) MiB"
cat "$core" "$core".* > /dev/null  # the page cache holds them all, for every tool alike

field() { sed -n "s/.*$1=\([0-9.-]*\).*/\1/p" <<<"$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
rss_mb() { /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1; awk '{ printf "%.0f", $1 / 1024 }' "$work/rss"; }
gdb_cmd=(gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'thread apply all bt' "$exe")
declare -A first total
add() { first[$1]+="$2 "; total[$1]+="$3 "; }

# Ours warm: one pwsh, the module loaded and one core read first; then each round: the first object,
# and the object plus every thread's frames as text.
cat > "$work/warm.ps1" <<EOF
Import-Module '$repo/out/PSLinuxTrace/PSLinuxTrace.psd1'
\$null = Read-CoreDump '$core'
foreach (\$f in \$args) {
  \$a = (Measure-Command { \$c = Read-CoreDump \$f | Select-Object -First 1 }).TotalMilliseconds
  \$b = (Measure-Command { \$c = Read-CoreDump \$f; \$null = \$c.Threads | ForEach-Object { \$_.Frames.ForEach('ToString') } }).TotalMilliseconds
  "\$f first_ms=\$a total_ms=\$b"
}
EOF

compressed=("$core.zst" "$core.lz4"); [ -f "$core.xz" ] && compressed+=("$core.xz")
for ((r = 1; r <= ROUNDS; r++)); do
  l=$($bench --time "${gdb_cmd[@]}" "$core"); add gdb "$(field first_ms "$l")" "$(field total_ms "$l")"
  l=$($bench --time eu-stack --core="$core" -e "$exe"); add eu "$(field first_ms "$l")" "$(field total_ms "$l")"
  l=$($bench --once "$core"); add ours "$(field first_ms "$l")" "$(field total_ms "$l")"; ours_line=$l
  l=$($bench --time $bench --once "$core"); add ours_proc "$(field total_ms "$l")" "$(field total_ms "$l")"
  while read -r f l; do add "warm:${f##*/}" "$(field first_ms "$l")" "$(field total_ms "$l")"; done < <("$pwsh" -NoProfile -File "$work/warm.ps1" "$core" "${compressed[@]}")
  for c in "${compressed[@]}"; do
    n=${c##*.}; tool=$([ "$n" = zst ] && echo zstd || echo "$n")
    l=$($bench --once "$c"); add "ours:$n" "$(field first_ms "$l")" "$(field total_ms "$l")"
    t0=$(date +%s%N); $tool -dc "$c" > /dev/null; t1=$(date +%s%N); add "floor:$n" $(((t1 - t0) / 1000000)) $(((t1 - t0) / 1000000))
    t0=$(date +%s%N); $tool -dc "$c" > "$work/unpacked"; t1=$(date +%s%N); l=$($bench --time eu-stack --core="$work/unpacked" -e "$exe"); t2=$(date +%s%N)
    rm -f "$work/unpacked"
    add "unpack+eu:$n" "$(awk -v a=$(((t1 - t0) / 1000000)) -v b="$(field first_ms "$l")" 'BEGIN { print a + b }')" $(((t2 - t0) / 1000000))
  done
done

gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'set width 0' -ex 'thread apply all bt' "$exe" "$core" > "$work/gdb.bt" 2>/dev/null
echo "threads with a named frame: $(field named "$ours_line")/$(field threads "$ours_line"), frames $(field frames "$ours_line");" \
  "same frames as gdb: $($bench "$core" --same-as "$work/gdb.bt" | sed -n 's/^same=//p') threads"
echo "peak RSS (MiB): gdb $(rss_mb "${gdb_cmd[@]}" "$core"), eu-stack $(rss_mb eu-stack --core="$core" -e "$exe"), ours $(rss_mb $bench --once "$core")," \
  "ours on .zst $(rss_mb $bench --once "$core.zst"), ours on .lz4 $(rss_mb $bench --once "$core.lz4")," \
  "eu-stack on the unpacked core $(rss_mb eu-stack --core="$core" -e "$exe")"
printf "%-16s %12s %12s %14s %14s\n" what first_ms total_ms total/eu-stack total/gdb
eu=$(median ${total[eu]}); gd=$(median ${total[gdb]})
for k in gdb eu ours ours_proc "warm:core" "ours:zst" "warm:core.zst" "floor:zst" "unpack+eu:zst" "ours:lz4" "warm:core.lz4" "floor:lz4" "unpack+eu:lz4" "ours:xz" "warm:core.xz" "floor:xz" "unpack+eu:xz"; do
  [ -n "${total[$k]:-}" ] || continue
  f=$(median ${first[$k]}); t=$(median ${total[$k]})
  printf "%-16s %12.1f %12.1f %14.2f %14.2f\n" "$k" "$f" "$t" "$(awk -v a="$t" -v b="$eu" 'BEGIN { print a / b }')" "$(awk -v a="$t" -v b="$gd" 'BEGIN { print a / b }')"
done
cat <<'EOF'
gdb, eu: whole processes (first_ms: their first line of output). ours: the engine in a new process (first_ms: the
CoreDump returned; total_ms: every thread's frames printed), ours_proc: that whole process, .NET start-up included.
warm:*: Read-CoreDump in a warm pwsh (first: | Select-Object -First 1; total: every frame's ToString()).
floor:*: the decompressor alone (zstd/lz4/xz -dc > /dev/null); unpack+eu:*: what coredumpctl does for
eu-stack: decompress to a file, then eu-stack it (first_ms: up to eu-stack's first line).
EOF
