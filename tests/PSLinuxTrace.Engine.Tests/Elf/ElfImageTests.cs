using System.Globalization;
using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Unwind;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Elf;

/// <summary>
/// ELF images read from a live process's memory (/proc/PID/mem), cross-checked against elfutils
/// (eu-unstrip reads build-ids from memory too) and readelf on the files and on the vDSO's bytes.
/// </summary>
public class ElfImageTests
{
    private static string Exe => Fixtures.Build("symbols");

    [PrivilegedFact("reads another process's memory through /proc/PID/mem")]
    public void EveryModuleOfALiveProcessHasEuUnstripsBuildIdAndPlace()
    {
        using var p = FixtureProcess.Start(Exe);
        using var memory = MemoryFile.Open(p.Pid);
        var maps = ProcFs.ReadMaps(p.Pid);
        // eu-unstrip -n: "START+SIZE BUILDID@NOTEADDRESS FILE DEBUGFILE NAME", one line per module.
        string listing = Tool.Check("eu-unstrip", "-n", "-p", p.Pid.ToString(CultureInfo.InvariantCulture));
        var modules = Regex.Matches(listing, @"^0x([0-9a-f]+)\+0x([0-9a-f]+) ([0-9a-f]+)@0x[0-9a-f]+ \S+ \S+ (.+)$", RegexOptions.Multiline);
        Assert.True(modules.Count >= 4, listing); // the program, libc, ld.so, the vDSO
        foreach (Match m in modules)
        {
            ulong start = Convert.ToUInt64(m.Groups[1].Value, 16), size = Convert.ToUInt64(m.Groups[2].Value, 16);
            string name = m.Groups[4].Value.Trim();
            var image = ElfImage.FromAddressSpace(memory, start, name);
            Assert.Equal(m.Groups[3].Value, image.BuildIdHex);
            Assert.True(start == image.Start, $"{name}: eu-unstrip 0x{start:x}, we 0x{image.Start:x}");
            // eu-unstrip ends a module with its last file mapping; the image's span also holds the .bss past it.
            Assert.InRange(start + size, start + 1, (image.End + 0xfff) & ~0xfffUL);
            var header = maps.First(x => x.Start == start);
            if (header.Kind != MappingKind.File) continue;
            // The bias the file's program headers give for its mappings, and its build-id on disk.
            using var file = ElfFile.Open(header.Path!);
            Assert.Equal(file.BuildIdHex, image.BuildIdHex);
            Assert.Equal(file.Header, image.Header);
            Assert.Equal(file.ProgramHeaders, image.ProgramHeaders);
            var mine = maps.Where(x => x.Path == header.Path).Select(x => (x.Start, x.Offset));
            Assert.Equal(PSLinuxTrace.Engine.Symbols.LoadBiasFinder.Compute(file, mine), image.LoadBias);
        }
    }

    [PrivilegedFact("reads another process's memory through /proc/PID/mem")]
    public void LibcsDynamicSymbolsInMemoryAreReadelfs()
    {
        using var p = FixtureProcess.Start(Exe);
        using var memory = MemoryFile.Open(p.Pid);
        var libc = ProcFs.ReadMaps(p.Pid).First(m => m.Path is { } path && Path.GetFileName(path).StartsWith("libc.so", StringComparison.Ordinal) && m.Offset == 0);
        var table = ElfImage.FromAddressSpace(memory, libc.Start, libc.Path!).DynamicSymbols;
        Assert.NotNull(table);
        Assert.True(table.HasHashTable);
        var expected = ReadelfDynamicSymbols(libc.Path!);
        Assert.Equal(expected.Count, table.Count);
        foreach (var (index, value, name) in expected)
        {
            Assert.Equal(name, table[index].Name);
            Assert.Equal(value, table[index].Value);
        }
        // Lookups go through DT_GNU_HASH; nearest-symbol lookups through the address index.
        var malloc = expected.Single(s => s.Name == "malloc");
        Assert.Equal(malloc.Value, table.Lookup("malloc")!.Value);
        Assert.Equal(malloc.Value, table.FindContaining(malloc.Value + 1)!.Value);
    }

    [PrivilegedFact("reads another process's memory through /proc/PID/mem")]
    public void TheVdsosSymbolsAndCallFrameInformationComeFromMemoryAsReadelfSeesTheImage()
    {
        using var p = FixtureProcess.Start(Exe);
        using var memory = MemoryFile.Open(p.Pid);
        var vdso = ProcFs.ReadMaps(p.Pid).Single(m => m.Kind == MappingKind.Vdso);
        // The vDSO is a whole ELF file mapped in one piece: its bytes are what readelf reads.
        string copy = Path.Combine(Fixtures.ScratchDirectory, $"vdso-{Guid.NewGuid():N}.so");
        File.WriteAllBytes(copy, memory.TryReadArray(vdso.Start, (int)vdso.Size)!);
        var image = ElfImage.FromAddressSpace(memory, vdso.Start, "[vdso]");
        Assert.Equal(vdso.Start, image.LoadBias); // linked at 0
        var table = image.DynamicSymbols!;
        var expected = ReadelfDynamicSymbols(copy);
        Assert.Contains(expected, s => s.Name == "__vdso_clock_gettime");
        Assert.Equal(expected.Count, table.Count);
        foreach (var (index, value, name) in expected)
            Assert.Equal((name, value), (table[index].Name, table[index].Value));

        var cfi = CallFrameInfo.FromImage(image);
        Assert.NotNull(cfi);
        // readelf --debug-dump=frames: "... FDE cie=... pc=BEGIN..END" for each FDE.
        var fdes = Regex.Matches(Tool.Check("readelf", "-W", "--debug-dump=frames", copy), @" FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)");
        Assert.True(fdes.Count > 0);
        Assert.Equal(fdes.Count, cfi.Count);
        foreach (Match f in fdes)
        {
            ulong begin = Convert.ToUInt64(f.Groups[1].Value, 16), end = Convert.ToUInt64(f.Groups[2].Value, 16);
            Assert.True(cfi.Covers(begin) && cfi.Covers(end - 1), $"FDE 0x{begin:x}..0x{end:x}");
        }
    }

    /// <summary>`readelf --dyn-syms -W`: index, value and name (without @version) of every symbol, the null one at index 0 included.</summary>
    internal static List<(int Index, ulong Value, string Name)> ReadelfDynamicSymbols(string file)
    {
        var list = new List<(int, ulong, string)>();
        foreach (Match m in Regex.Matches(Tool.Check("readelf", "-W", "--dyn-syms", file), @"^ *(\d+): ([0-9a-f]{16}) +\S+ +\S+ +\S+ +\S+ +\S+ *(\S*)", RegexOptions.Multiline))
        {
            int index = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            string name = m.Groups[3].Value;
            int at = name.IndexOf('@');
            list.Add((index, Convert.ToUInt64(m.Groups[2].Value, 16), at >= 0 ? name[..at] : name));
        }
        return list;
    }
}
