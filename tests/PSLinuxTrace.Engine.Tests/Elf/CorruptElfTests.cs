using System.Buffers.Binary;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Elf;

/// <summary>
/// A corpus of damaged files built from real ones: truncations, random byte damage in the tables,
/// and hand-made hostile headers. Every API must either work or throw BadInputFormatException:
/// never IndexOutOfRange, OutOfMemory, an endless loop, or an untyped exception.
/// </summary>
public class CorruptElfTests
{
    private static readonly string[] Names = { "malloc", "main", "pslt_function", "pslt_lib_global", "printf", "_start" };

    /// <summary>Touches every part of the reader; returns normally or throws whatever the reader throws.</summary>
    private static void Exercise(byte[] bytes)
    {
        using var elf = ElfFile.FromBytes(bytes, "corpus");
        _ = elf.Sections.Count;
        foreach (var table in new[] { elf.DynamicSymbols, elf.SymbolTable })
        {
            if (table is null) continue;
            foreach (var s in table.All) _ = s.Name;
            foreach (string n in Names) table.Lookup(n);
            table.FindContaining(0x1100);
        }
        foreach (var n in elf.GetNotes()) n.Descriptor(elf);
        _ = elf.BuildId;
        _ = elf.GetDynamicEntries().Count();
        foreach (var s in elf.Sections)
            if (s.Type is ElfSection.SHT_RELA or ElfSection.SHT_REL) _ = elf.GetRelocations(s).Count();
        foreach (var s in elf.Sections) elf.GetSectionBytes(s);
    }

    private static void MustBeTypedOrFine(byte[] bytes, string what)
    {
        try
        {
            Exercise(bytes);
        }
        catch (BadInputFormatException ex)
        {
            Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        }
        catch (Exception ex)
        {
            Assert.Fail($"{what}: {ex.GetType().Name}: {ex.Message}\n{ex.StackTrace}");
        }
    }

    private static void WithDeadline(Action body)
    {
        var task = Task.Run(body);
        Assert.True(task.Wait(TimeSpan.FromMinutes(2)), "the reader did not finish: a loop on corrupt input?");
        task.GetAwaiter().GetResult();
    }

    public static TheoryData<string> Seeds() => new()
    {
        Fixtures.Build("symbols"),
        Fixtures.Build("symbols", "-no-pie"),
        ElfReaderTests.SharedLibrary(),
    };

    [Theory, MemberData(nameof(Seeds))]
    public void EveryTruncationIsABadFormatOrReadable(string seed)
    {
        byte[] full = File.ReadAllBytes(seed);
        Exercise(full); // the intact file works
        WithDeadline(() =>
        {
            var cuts = new SortedSet<int> { 1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 120, 200 };
            for (int c = 0; c < full.Length; c += Math.Max(1, full.Length / 400)) cuts.Add(c);
            foreach (int cut in cuts.Where(c => c > 0 && c < full.Length))
                MustBeTypedOrFine(full[..cut], $"truncated at {cut}");
        });
        Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(full[..40], "short"));
    }

    [Theory, MemberData(nameof(Seeds))]
    public void RandomDamageInTheTablesNeverEscapesAsAnUntypedError(string seed)
    {
        byte[] full = File.ReadAllBytes(seed);
        using var intact = ElfFile.FromBytes(full, "intact");
        // Damage where the structure lives: headers, program and section header tables, symbol, string, hash, version and note sections.
        var regions = new List<(ulong off, ulong len)> { (0, 64), (intact.Header.ProgramHeaderOffset, intact.Header.ProgramHeaderCount * 56UL),
            (intact.Header.SectionHeaderOffset, intact.Header.SectionHeaderCount * 64UL) };
        foreach (var s in intact.Sections)
            if (s.Type is ElfSection.SHT_DYNSYM or ElfSection.SHT_SYMTAB or ElfSection.SHT_GNU_HASH or ElfSection.SHT_HASH or ElfSection.SHT_NOTE
                or ElfSection.SHT_GNU_verdef or ElfSection.SHT_GNU_verneed or ElfSection.SHT_GNU_versym or ElfSection.SHT_STRTAB or ElfSection.SHT_DYNAMIC or ElfSection.SHT_RELA)
                regions.Add((s.Offset, Math.Min(s.Size, 4096)));
        var rng = new Random(20261123 ^ full.Length);
        WithDeadline(() =>
        {
            for (int i = 0; i < 1500; i++)
            {
                byte[] b = (byte[])full.Clone();
                int flips = 1 + rng.Next(4);
                for (int k = 0; k < flips; k++)
                {
                    var (off, len) = regions[rng.Next(regions.Count)];
                    if (len == 0) continue;
                    int at = (int)(off + (ulong)rng.Next((int)len));
                    if (at < 7 && rng.Next(4) != 0) at = 7 + rng.Next(57); // mostly keep the ident valid so damage reaches the tables
                    b[at] = rng.Next(3) switch { 0 => 0xff, 1 => 0, _ => (byte)rng.Next(256) };
                }
                MustBeTypedOrFine(b, $"mutant {i}");
            }
        });
    }

    [Fact]
    public void HostileHeadersAreRejectedWithClearMessages()
    {
        byte[] good = File.ReadAllBytes(Fixtures.Build("symbols"));

        byte[] elf32 = (byte[])good.Clone();
        elf32[4] = 1;
        Assert.Contains("32-bit", Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(elf32, "x")).Message);

        byte[] bigEndian = (byte[])good.Clone();
        bigEndian[5] = 2;
        Assert.Contains("big-endian", Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(bigEndian, "x")).Message);

        Assert.Contains("not an ELF", Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes("#!/bin/sh\necho hi\n"u8.ToArray(), "x")).Message);
        Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(new byte[] { 0x7f, (byte)'E', (byte)'L' }, "x"));
        // The magic and nothing else: truncated, with its length, not "no magic".
        Assert.Equal("x: truncated: 4 bytes, an ELF header needs 64.",
            Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(good[..4], "x")).Message);
        Assert.Contains("truncated: 63 bytes", Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(good[..63], "x")).Message);

        // A program header count that would need 3.5 MB of table in a small file.
        byte[] phnum = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(phnum.AsSpan(56), 0xfffe);
        Assert.Contains("program header table", Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(phnum, "x")).Message);

        // PN_XNUM pointing at a section 0 whose sh_info claims 4 billion program headers.
        byte[] xnum = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(xnum.AsSpan(56), 0xffff);
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(xnum.AsSpan(40));
        BinaryPrimitives.WriteUInt32LittleEndian(xnum.AsSpan((int)shoff + 44), 0xffffffff);
        Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(xnum, "x"));

        // Section headers past the end of the file.
        byte[] shoffBad = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(shoffBad.AsSpan(40), ulong.MaxValue - 10);
        Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(shoffBad, "x"));

        // An entry size smaller than the structure.
        byte[] phent = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(phent.AsSpan(54), 8);
        Assert.Throws<BadInputFormatException>(() => ElfFile.FromBytes(phent, "x"));
    }

    [Fact]
    public void ExtendedProgramHeaderNumberingIsHonoured()
    {
        // Rewrite a real file to use PN_XNUM: e_phnum = 0xffff, the true count in section 0's sh_info.
        byte[] b = File.ReadAllBytes(Fixtures.Build("symbols"));
        ushort phnum = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(56));
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(40));
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(56), 0xffff);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)shoff + 44), phnum);
        using var elf = ElfFile.FromBytes(b, "xnum");
        Assert.Equal((int)phnum, elf.ProgramHeaders.Count);
        Assert.Contains(elf.ProgramHeaders, p => p.Type == ElfProgramHeader.PT_LOAD);
    }

    [Fact]
    public void MissingAndEmptyFilesGiveTheirOwnErrors()
    {
        Assert.Throws<FileNotFoundException>(() => ElfFile.Open(Path.Combine(Fixtures.ScratchDirectory, "no-such-file.so")));
        string empty = Path.Combine(Fixtures.ScratchDirectory, "empty.so");
        File.WriteAllBytes(empty, Array.Empty<byte>());
        Assert.Throws<BadInputFormatException>(() => ElfFile.Open(empty));
    }
}
