using System.Globalization;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// The system libc's separate debug file (libc6-dbg: DWARF 5 from gcc 12 -O2, zlib-compressed
/// sections, ~4000 units): the middle and last byte of every other function, against addr2line;
/// and a lookup parses only the units it needs.
/// </summary>
public sealed class LibcDebugFileTests(ITestOutputHelper output)
{
    private static string DebugFile()
    {
        using var libc = ElfFile.Open(ElfReaderTests.LibC);
        return DebugFileLocator.Find(libc, ElfReaderTests.LibC) ?? throw new InvalidOperationException("libc6-dbg is not installed (.ci/run installs it)");
    }

    private static List<ulong> Addresses(string debugFile)
    {
        var list = new List<ulong>();
        var functions = Tool.Check("readelf", "-sW", debugFile).Split('\n')
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 8 && f[3] == "FUNC" && int.TryParse(f[2], out int size) && size > 1)
            .Select(f => (Value: ulong.Parse(f[1], NumberStyles.HexNumber), Size: ulong.Parse(f[2], CultureInfo.InvariantCulture)))
            .Distinct().Order().ToList();
        for (int i = 0; i < functions.Count; i += 2)
        {
            var (value, size) = functions[i];
            list.Add(value + size / 2);
            list.Add(value + size - 1);
        }
        return list;
    }

    [Fact]
    public void FramesMatchAddr2Line()
    {
        string debug = DebugFile();
        using var elf = ElfFile.Open(debug);
        var info = DwarfSourceInfo.Load(elf)!;
        var addresses = Addresses(debug);
        var check = CrossCheck.Run(info, debug, debug, addresses);
        output.WriteLine($"libc: {check}");
        foreach (string e in check.Examples) output.WriteLine("  e.g. " + e);
        Assert.True(check.Differences.Count == 0, string.Join("\n", check.Differences.Take(20)));
        Assert.True(check.Inlined > check.Addresses / 20, $"only {check.Inlined} addresses in inlined code");
        // binutils' file-1 slip is the only dispute: names and lines are addr2line's everywhere.
        Assert.True(check.Disputed < check.Addresses / 10, $"{check.Disputed} addresses differ from addr2line");
        Assert.Equal($"{check.Disputed}× frame 0: file", check.DisputeKinds);
        Assert.Empty(info.Warnings);
    }

    [Fact]
    public void ALookupParsesOnlyTheUnitItFallsIn()
    {
        using var elf = ElfFile.Open(DebugFile());
        var info = DwarfSourceInfo.Load(elf)!;
        Assert.Equal(0, info.ParsedUnitCount);
        using var libc = ElfFile.Open(ElfReaderTests.LibC);
        var malloc = libc.DynamicSymbols!.FindAll("malloc").First();
        ulong address = malloc.Value + 16;
        var frames = info.Lookup(address);
        var addr2line = ReferenceSymbolizers.Addr2Line(elf.Name, [address])[address];
        Assert.Null(DwarfLookupTests.Compare(frames, addr2line));
        Assert.Equal(malloc.Value, frames[^1].EntryAddress);
        Assert.Equal(1, info.ParsedUnitCount);
        Assert.True(info.UnitCount > 1000, $"{info.UnitCount} units");
    }
}
