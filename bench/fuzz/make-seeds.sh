#!/usr/bin/env bash
# Rebuilds the seed inputs of every fuzz target under tests/Fixtures/fuzz/<target>/seed-* from
# small real files: builds of seeds/tiny.c (gcc and clang, DWARF 4 and 5, PIE and not, shared,
# relocatable, sysv hash), a gcore of it with two threads and the kernel's core of its SIGSEGV,
# BPF objects (seeds/*.bpf.c, src/bpf/exec.bpf.o) and their BTF. SeedMaker (the harness' `seeds`
# mode) cuts them to a few KiB. Entries AFL++ found (id-*) are left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
mkdir -p "$raw"/{elf,core,bpf,debug}
src=$here/seeds/tiny.c
# Compact layouts (no page-aligned padding) keep whole executables at a few KiB.
small=(-Wl,-z,noseparate-code -Wl,-z,max-page-size=0x40 -Wl,-z,common-page-size=0x40 -Wl,--build-id)
gcc -O2 -pthread "${small[@]}" -s "$src" -o "$raw/elf/gcc-O2-stripped"
gcc -O0 -pthread "${small[@]}" -no-pie "$src" -o "$raw/elf/gcc-O0-nopie"
gcc -O2 -pthread "${small[@]}" -Wl,--hash-style=sysv "$src" -o "$raw/elf/gcc-O2-sysvhash"
gcc -O2 -fPIC -shared "${small[@]}" "$src" -o "$raw/elf/gcc-shared.so"
gcc -O2 -c "$src" -o "$raw/elf/gcc-relocatable.o"
clang -O2 -pthread "${small[@]}" "$src" -o "$raw/elf/clang-O2"
# DWARF and CFI: the fixture sources the DWARF tests use, and tiny.c.
gcc -O2 -g "${small[@]}" -pthread "$src" -o "$raw/debug/tiny-gcc-O2-dwarf5"
gcc -O0 -gdwarf-4 "${small[@]}" -pthread -fno-asynchronous-unwind-tables "$src" -o "$raw/debug/tiny-gcc-O0-dwarf4-debugframe"
clang -O2 -g "${small[@]}" -pthread "$src" -o "$raw/debug/tiny-clang-O2-dwarf5"
clang -O1 -gdwarf-4 "${small[@]}" -pthread "$src" -o "$raw/debug/tiny-clang-O1-dwarf4"
gcc -O2 -g "${small[@]}" -I"$repo/tests/Fixtures" "$repo/tests/Fixtures/dwarf_inline.c" -o "$raw/debug/inline-gcc-O2"
clang -O2 -g "${small[@]}" -I"$repo/tests/Fixtures" "$repo/tests/Fixtures/dwarf_inline.c" -o "$raw/debug/inline-clang-O2"
gcc -O2 -gdwarf-2 "${small[@]}" -I"$repo/tests/Fixtures" "$repo/tests/Fixtures/dwarf_units.c" "$repo/tests/Fixtures/dwarf_units_b.c" -o "$raw/debug/units-gcc-dwarf2"
# Real-world CFI: the first 4 KiB of entries of the dynamic loader's and libc's .eh_frame.
cp /lib64/ld-linux-x86-64.so.2 "$raw/debug/ld.so"; cp /lib/x86_64-linux-gnu/libc.so.6 "$raw/debug/libc.so"
gcc -O2 -g -gz=zlib "${small[@]}" "$src" -pthread -o "$raw/elf/gcc-O2-gz"
# Cores: gdb's of a parked two-thread process, the kernel's of a crash (core_pattern must be a file name).
gcc -O2 -g -pthread "$src" -o "$raw/tiny"
"$raw/tiny" park > "$raw/park.out" & pid=$!
for _ in $(seq 50); do [ -s "$raw/park.out" ] && break; sleep 0.1; done
gcore -o "$raw/core/gcore" "$pid" > /dev/null 2>&1 || echo "make-seeds: gcore failed" >&2
kill "$pid"; wait "$pid" 2>/dev/null || true
mv "$raw/core/gcore.$pid" "$raw/core/gcore" 2>/dev/null || true
if [[ "$(cat /proc/sys/kernel/core_pattern)" == core* ]]; then
  mkdir "$raw/crash"
  (cd "$raw/crash" && ulimit -c unlimited && { ../tiny crash || true; }) 2>/dev/null
  core=$(find "$raw/crash" -maxdepth 1 -type f -name 'core*' | head -1)
  [ -n "$core" ] && mv "$core" "$raw/core/kernel"
fi
# BPF: objects with and without BTF, and the engine's own exec.bpf.o.
clang -O2 -g0 -target bpf -c "$here/seeds/prog.bpf.c" -o "$raw/bpf/prog-g0.o"
clang -O2 -g -target bpf -c "$here/seeds/prog.bpf.c" -o "$raw/bpf/prog-g.o"
clang -O2 -g -target bpf -c "$here/seeds/btf.c" -o "$raw/bpf/btf-types.o"
cp "$repo/src/bpf/exec.bpf.o" "$raw/bpf/exec.o"
dotnet build -c Release -v q -nologo "$here/PSLinuxTrace.Fuzz.csproj" -o "$repo/out/fuzz/seedgen" > /dev/null
dotnet "$repo/out/fuzz/seedgen/PSLinuxTrace.Fuzz.dll" seeds "$raw" "$repo/tests/Fixtures/fuzz"
du -sh "$repo/tests/Fixtures/fuzz"/* 
