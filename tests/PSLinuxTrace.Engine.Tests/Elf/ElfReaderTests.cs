using PSLinuxTrace.Engine.Model;
using System.Globalization;
using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Elf;

/// <summary>The ELF reader against readelf on real files: fixtures (PIE, non-PIE, static, shared) and the system's libc.</summary>
public class ElfReaderTests
{
    public static TheoryData<string> Files()
    {
        var d = new TheoryData<string>();
        d.Add(Fixtures.Build("symbols"));
        d.Add(Fixtures.Build("symbols", "-no-pie"));
        d.Add(Fixtures.Build("symbols", "-static"));
        d.Add(Fixtures.Build("symbols", "-s", "symbols-stripped"));
        d.Add(SharedLibrary());
        d.Add(LibC);
        return d;
    }

    public static string LibC { get; } = FindLibC();

    private static string FindLibC()
    {
        // Where the dynamic linker finds libc.so.6 on this machine (ldd of our own fixture).
        string ldd = Tool.Check("ldd", Fixtures.Build("symbols"));
        var m = Regex.Match(ldd, @"libc\.so\.6 => (\S+)");
        Assert.True(m.Success, ldd);
        return Tool.Check("readlink", "-f", m.Groups[1].Value).Trim();
    }

    public static string SharedLibrary(string value = "0x1111111111111111ULL", int pad = 1, string name = "libpsltfix.so")
    {
        string dir = Path.Combine(Fixtures.ScratchDirectory, $"lib-{pad}");
        Directory.CreateDirectory(dir);
        string output = Path.Combine(dir, name);
        lock (typeof(ElfReaderTests))
        {
            if (!File.Exists(output))
                Tool.Check("cc", "-shared", "-fPIC", "-g", "-O0", $"-DPSLT_LIB_VALUE={value}", $"-DPSLT_LIB_PAD={pad}",
                    "-o", output, Repo.Path("tests", "Fixtures", "symlib.c"));
        }
        return output;
    }

    [Theory, MemberData(nameof(Files))]
    public void HeaderAndProgramHeadersMatchReadelf(string path)
    {
        using var elf = ElfFile.Open(path);
        string h = Tool.Check("readelf", "-hW", path);
        Assert.Equal(HexAfter(h, "Entry point address:"), elf.Header.Entry);
        Assert.Contains(elf.Header.Type switch { ElfType.Executable => "EXEC", ElfType.SharedObject => "DYN", _ => "?" }, h);
        Assert.Equal(ElfHeader.EM_X86_64, elf.Header.Machine);

        var rows = Tool.Check("readelf", "-lW", path).Split('\n')
            .Select(l => l.Trim())
            .Where(l => Regex.IsMatch(l, @"^[A-Z_]+\s+0x[0-9a-f]+ 0x"))
            .ToList();
        Assert.Equal(rows.Count, elf.ProgramHeaders.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            var f = rows[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var p = elf.ProgramHeaders[i];
            Assert.Equal(Hex(f[1]), p.Offset);
            Assert.Equal(Hex(f[2]), p.VirtualAddress);
            Assert.Equal(Hex(f[4]), p.FileSize);
            Assert.Equal(Hex(f[5]), p.MemorySize);
            if (f[0] is "LOAD" or "DYNAMIC" or "NOTE" or "INTERP" or "TLS")
                Assert.Equal(f[0], p.TypeName);
        }
    }

    [Theory, MemberData(nameof(Files))]
    public void SectionsMatchReadelf(string path)
    {
        using var elf = ElfFile.Open(path);
        var rows = Tool.Check("readelf", "-SW", path).Split('\n')
            .Select(l => Regex.Match(l, @"^\s*\[\s*(\d+)\]\s+(\S*)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)"))
            .Where(m => m.Success)
            .ToList();
        Assert.Equal(rows.Count, elf.Sections.Count);
        foreach (var m in rows.Skip(1))
        {
            var s = elf.Sections[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)];
            Assert.Equal(m.Groups[2].Value, s.Name);
            Assert.Equal(Hex(m.Groups[4].Value), s.Address);
            Assert.Equal(Hex(m.Groups[5].Value), s.Offset);
            Assert.Equal(Hex(m.Groups[6].Value), s.Size);
        }
    }

    [Theory, MemberData(nameof(Files))]
    public void SymbolTablesMatchReadelf(string path)
    {
        using var elf = ElfFile.Open(path);
        foreach (var (table, option) in new[] { (elf.DynamicSymbols, "--dyn-syms"), (elf.SymbolTable, "--syms") })
        {
            var expected = ReadelfSymbols(path, option, table is null ? null : (option == "--dyn-syms" ? ".dynsym" : ".symtab"));
            if (table is null)
            {
                Assert.Empty(expected);
                continue;
            }
            Assert.Equal(expected.Count, table.Count);
            for (int i = 1; i < expected.Count; i++)
            {
                var (value, size, type, bind, name) = expected[i];
                var s = table[i];
                Assert.Equal(value, s.Value);
                Assert.Equal(size, s.Size);
                Assert.Equal(type, KindName(s.Kind));
                Assert.Equal(bind, BindName(s.Binding));
                // readelf prints name@VERSION / name@@VERSION for versioned dynamic symbols.
                string shown = s.Version is null ? s.Name : s.Name + (s.IsDefined && s.IsDefaultVersion ? "@@" : "@") + s.Version;
                Assert.True(name == shown || name == s.Name || name.StartsWith(s.Name + "@", StringComparison.Ordinal),
                    $"symbol {i}: readelf says '{name}', we say '{shown}'");
            }
        }
    }

    [Theory, MemberData(nameof(Files))]
    public void HashLookupFindsWhatALinearScanFinds(string path)
    {
        using var elf = ElfFile.Open(path);
        foreach (var table in new[] { elf.DynamicSymbols, elf.SymbolTable })
        {
            if (table is null) continue;
            var defined = table.All.Where(s => s.IsDefined && s.Name.Length > 0).ToList();
            Assert.NotEmpty(defined);
            foreach (var group in defined.GroupBy(s => s.Name))
            {
                var found = table.Lookup(group.Key);
                Assert.NotNull(found);
                Assert.Equal(group.Key, found!.Name);
                Assert.Contains(found, group);
                if (group.Any(s => s.IsDefaultVersion)) Assert.True(found.IsDefaultVersion, $"{group.Key}: a hidden version was preferred");
            }
            Assert.Null(table.Lookup("pslt_no_such_symbol_anywhere"));
        }
    }

    [Fact]
    public void LibcDynamicSymbolsUseTheGnuHashTableAndVersions()
    {
        using var elf = ElfFile.Open(LibC);
        var dyn = elf.DynamicSymbols!;
        Assert.True(dyn.HasHashTable);
        var malloc = dyn.Lookup("malloc")!;
        Assert.Equal(ElfSymbolKind.Function, malloc.Kind);
        Assert.StartsWith("GLIBC_", malloc.Version);
        string readelf = Tool.Check("readelf", "--dyn-syms", "-W", LibC);
        var m = Regex.Match(readelf, @":\s+([0-9a-f]+)\s+\d+\s+FUNC\s+\S+\s+\S+\s+\S+\s+malloc@@(\S+)");
        Assert.True(m.Success);
        Assert.Equal(Hex(m.Groups[1].Value), malloc.Value);
        Assert.Equal(m.Groups[2].Value, malloc.Version);
    }

    [Theory, MemberData(nameof(Files))]
    public void BuildIdMatchesReadelfNotes(string path)
    {
        using var elf = ElfFile.Open(path);
        var m = Regex.Match(Tool.Check("readelf", "-nW", path), @"Build ID: ([0-9a-f]+)");
        Assert.Equal(m.Success ? m.Groups[1].Value : null, elf.BuildIdHex);
    }

    [Fact]
    public void FindContainingMapsAddressesInsideFunctionsToThem()
    {
        using var elf = ElfFile.Open(Fixtures.Build("symbols"));
        var symtab = elf.SymbolTable!;
        var f = symtab.Lookup("pslt_function")!;
        Assert.Equal(f, symtab.FindContaining(f.Value));
        Assert.Equal(f, symtab.FindContaining(f.Value + f.Size - 1));
        var main = symtab.Lookup("main")!;
        Assert.Equal(main, symtab.FindContaining(main.Value + 3));
        var data = symtab.Lookup("pslt_data_marker")!;
        Assert.Equal(data, symtab.FindContaining(data.Value + 4));
        Assert.Null(symtab.FindContaining(0));
    }

    [Fact]
    public void RelocationsAndDynamicEntriesMatchReadelf()
    {
        string lib = SharedLibrary();
        using var elf = ElfFile.Open(lib);
        var relaDyn = elf.FindSection(".rela.dyn")!;
        var relocs = elf.GetRelocations(relaDyn).ToList();
        var m = Regex.Match(Tool.Check("readelf", "-rW", lib), @"'\.rela\.dyn' at offset 0x[0-9a-f]+ contains (\d+) entr");
        Assert.Equal(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), relocs.Count);
        var needed = elf.GetDynamicEntries().Where(d => d.Tag == ElfDynamicEntry.DT_NEEDED).ToList();
        Assert.Equal(Regex.Matches(Tool.Check("readelf", "-dW", lib), @"\(NEEDED\)").Count, needed.Count);
    }

    internal static List<(ulong value, ulong size, string type, string bind, string name)> ReadelfSymbols(string path, string option, string? section)
    {
        var list = new List<(ulong, ulong, string, string, string)>();
        bool inTable = false;
        foreach (string line in Tool.Check("readelf", option, "-W", path).Split('\n'))
        {
            if (line.StartsWith("Symbol table '", StringComparison.Ordinal))
            {
                inTable = section is not null && line.Contains($"'{section}'", StringComparison.Ordinal);
                continue;
            }
            if (!inTable) continue;
            var m = Regex.Match(line, @"^\s*\d+:\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+(\S+)\s+(\S+)\s+\S+\s+\S+\s*(.*)$");
            if (!m.Success) continue;
            string sizeText = m.Groups[2].Value;
            ulong size = sizeText.StartsWith("0x", StringComparison.Ordinal) ? Hex(sizeText[2..]) : ulong.Parse(sizeText, CultureInfo.InvariantCulture);
            list.Add((Hex(m.Groups[1].Value), size, m.Groups[3].Value, m.Groups[4].Value, m.Groups[5].Value.Trim()));
        }
        return list;
    }

    private static string KindName(ElfSymbolKind k) => k switch
    {
        ElfSymbolKind.NoType => "NOTYPE", ElfSymbolKind.Object => "OBJECT", ElfSymbolKind.Function => "FUNC",
        ElfSymbolKind.Section => "SECTION", ElfSymbolKind.File => "FILE", ElfSymbolKind.Common => "COMMON",
        ElfSymbolKind.Tls => "TLS", ElfSymbolKind.GnuIFunc => "IFUNC", _ => k.ToString(),
    };

    private static string BindName(ElfSymbolBinding b) => b switch
    {
        ElfSymbolBinding.Local => "LOCAL", ElfSymbolBinding.Global => "GLOBAL", ElfSymbolBinding.Weak => "WEAK",
        ElfSymbolBinding.GnuUnique => "UNIQUE", _ => b.ToString(),
    };

    private static ulong HexAfter(string text, string label)
    {
        var m = Regex.Match(text, Regex.Escape(label) + @"\s+0x([0-9a-f]+)");
        Assert.True(m.Success, $"readelf printed no '{label}'");
        return Hex(m.Groups[1].Value);
    }

    internal static ulong Hex(string s) => ulong.Parse(s.StartsWith("0x", StringComparison.Ordinal) ? s[2..] : s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
