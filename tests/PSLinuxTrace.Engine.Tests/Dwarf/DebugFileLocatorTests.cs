using System.Buffers.Binary;
using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// Finding separate debug files where gdb looks (build-id, and .gnu_debuglink in three places),
/// with stripped fixtures split by objcopy the way distributions ship them, and libc's from libc6-dbg.
/// </summary>
public sealed class DebugFileLocatorTests
{
    [Theory]
    [InlineData("same-dir")]
    [InlineData("dot-debug")]
    [InlineData("debug-root")]
    [InlineData("build-id")]
    public void FindsTheDebugFileAndItAnswersAsTheUnstrippedBinary(string layout)
    {
        var (bin, debug, debugRoot) = DwarfFixtures.Split(layout);
        using var module = ElfFile.Open(bin);
        Assert.False(DebugFileLocator.HasDwarf(module));
        Assert.Equal(debug, DebugFileLocator.Find(module, bin, debugDirectories: [debugRoot]));

        // The stripped module's lookups through its debug file equal addr2line on the unstripped build.
        using var debugElf = ElfFile.Open(debug);
        Assert.True(DebugFileLocator.HasDwarf(debugElf));
        var info = DwarfSourceInfo.Load(debugElf)!;
        string unstripped = DwarfFixtures.Get("gcc-O2");
        var addresses = ReferenceSymbolizers.InstructionAddresses(unstripped);
        var reference = ReferenceSymbolizers.Addr2Line(unstripped, addresses);
        var differences = addresses.Where(a => DwarfLookupTests.Compare(info.Lookup(a), reference[a]) is not null).ToList();
        Assert.True(differences.Count == 0, $"{differences.Count} of {addresses.Count} differ, e.g. 0x{differences.FirstOrDefault():x}");
        Assert.Contains(addresses, a => info.Lookup(a).Count > 1);
    }

    [Fact]
    public void DebugLinkAndCrcAreWhatObjcopyWrote()
    {
        var (bin, debug, _) = DwarfFixtures.Split("same-dir");
        using var module = ElfFile.Open(bin);
        var link = DebugFileLocator.ReadDebugLink(module);
        Assert.NotNull(link);
        Assert.Equal(Path.GetFileName(debug), link.Value.FileName);
        // readelf -x .gnu_debuglink: the name, NUL padding, then objcopy's CRC-32 of the debug file.
        string hex = string.Concat(Regex.Matches(Tool.Check("readelf", "-x", ".gnu_debuglink", bin), @"^\s+0x[0-9a-f]+ ((?:[0-9a-f]{2,8} ){1,4})", RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value.Replace(" ", "")));
        byte[] bytes = Convert.FromHexString(hex);
        Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)), link.Value.Crc);
        Assert.Equal(link.Value.Crc, DebugFileLocator.FileCrc32(debug));
    }

    [Fact]
    public void ADebugFileOfAnotherBuildIsRefused()
    {
        var (bin, debug, debugRoot) = DwarfFixtures.Split("dot-debug");
        string root = Path.Combine(Fixtures.ScratchDirectory, "wrong-debug");
        string wrongBin = Path.Combine(root, "dwarf_inline");
        Directory.CreateDirectory(Path.Combine(root, ".debug"));
        File.Copy(bin, wrongBin, overwrite: true);
        // Another build's debug file under the right name: a different build-id.
        Tool.Check("objcopy", "--only-keep-debug", DwarfFixtures.Get("gcc-O0"), Path.Combine(root, ".debug", Path.GetFileName(debug)));
        using var module = ElfFile.Open(wrongBin);
        Assert.Null(DebugFileLocator.Find(module, wrongBin, debugDirectories: [debugRoot + "-none"]));
    }

    [Fact]
    public void WithoutBuildIdsTheCrcDecides()
    {
        string dir = Path.Combine(Fixtures.ScratchDirectory, "no-build-id");
        Directory.CreateDirectory(dir);
        string full = Fixtures.Build("dwarf_inline", "-O2 -Wl,--build-id=none", "dwarf_inline-no-build-id");
        string bin = Path.Combine(dir, "prog"), debug = Path.Combine(dir, "prog.debug");
        Tool.Check("objcopy", "--only-keep-debug", full, debug);
        Tool.Check("objcopy", "--strip-debug", $"--add-gnu-debuglink={debug}", full, bin);
        using (var module = ElfFile.Open(bin))
        {
            Assert.Null(module.BuildIdHex);
            Assert.Equal(debug, DebugFileLocator.Find(module, bin, debugDirectories: []));
        }
        // One byte changed in the debug file (its .comment): the CRC no longer matches.
        byte[] b = File.ReadAllBytes(debug);
        using (var d = ElfFile.Open(debug))
            b[d.FindSection(".comment")!.Offset] ^= 1;
        File.WriteAllBytes(debug, b);
        using (var module = ElfFile.Open(bin))
            Assert.Null(DebugFileLocator.Find(module, bin, debugDirectories: []));
    }

    [Fact]
    public void SysRootIsSearchedFirst()
    {
        var (bin, debug, _) = DwarfFixtures.Split("build-id");
        using var module = ElfFile.Open(bin);
        string sysRoot = Path.Combine(Fixtures.ScratchDirectory, "sysroot");
        string id = module.BuildIdHex!;
        string inRoot = Path.Join(sysRoot, "/usr/lib/debug/.build-id", id[..2], id[2..] + ".debug");
        Directory.CreateDirectory(Path.GetDirectoryName(inRoot)!);
        File.Copy(debug, inRoot, overwrite: true);
        Assert.Equal(inRoot, DebugFileLocator.Find(module, bin, sysRoot: sysRoot));
        Assert.Equal(inRoot, DebugFileLocator.FindByBuildId(id, sysRoot));
        Assert.Null(DebugFileLocator.FindByBuildId(id));
    }

    [Fact]
    public void FindsLibcDebugFileFromLibc6Dbg()
    {
        // .ci/run installs libc6-dbg; gdb finds the same file (its "Reading symbols from" line).
        using var libc = ElfFile.Open(ElfReaderTests.LibC);
        string? found = DebugFileLocator.Find(libc, ElfReaderTests.LibC);
        Assert.NotNull(found);
        string id = libc.BuildIdHex!;
        Assert.Equal($"/usr/lib/debug/.build-id/{id[..2]}/{id[2..]}.debug", found);
        string gdb = Tool.Run("gdb", ["-nx", "-batch", "-iex", "set debuginfod enabled off", "-iex", "set verbose on", ElfReaderTests.LibC]).StdOut;
        Assert.Contains($"Reading symbols from {found}...", gdb);
    }
}
