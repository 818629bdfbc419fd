using System.Buffers.Binary;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// Compressed debug sections, as gcc -gz and objcopy make them: every section inflates to exactly
/// the bytes `objcopy --decompress-debug-sections` writes, and damaged headers or streams give
/// BadInputFormatException.
/// </summary>
public sealed class DwarfSectionTests
{
    [Theory]
    [InlineData("gcc-O2-gz-zlib", ElfSectionDecompressor.ELFCOMPRESS_ZLIB)]
    [InlineData("gcc-O2-objcopy-zstd", ElfSectionDecompressor.ELFCOMPRESS_ZSTD)]
    [InlineData("gcc-O2-objcopy-zlib-gnu", 0u)]
    public void SectionsInflateToWhatObjcopyWrites(string build, uint compression)
    {
        string file = DwarfFixtures.Get(build);
        string plain = Path.Combine(Fixtures.ScratchDirectory, build + "-plain");
        Tool.Check("objcopy", "--decompress-debug-sections", file, plain);
        using var compressed = ElfFile.Open(file);
        using var reference = ElfFile.Open(plain);
        var ours = DwarfSections.FromElf(compressed);
        int checkedSections = 0, inflated = 0;
        foreach (var kind in Enum.GetValues<DwarfSectionKind>())
        {
            string name = DwarfSections.SectionName(kind);
            var raw = compressed.FindSection(name) ?? compressed.FindSection(".z" + name[1..]);
            if (reference.FindSection(name) is not { } expected)
            {
                Assert.False(ours.Has(kind), name);
                continue;
            }
            Assert.True(ours.Has(kind), name);
            Assert.True(ours[kind].SequenceEqual(reference.GetSectionBytes(expected)), $"{name} differs from objcopy's");
            checkedSections++;
            if (raw is not null && ElfSectionDecompressor.IsCompressed(raw))
            {
                inflated++;
                if (compression != 0) Assert.Equal(compression, BinaryPrimitives.ReadUInt32LittleEndian(compressed.GetSectionBytes(raw)));
                else Assert.StartsWith(".zdebug", raw.Name);
            }
        }
        Assert.True(checkedSections >= 5, $"{checkedSections} sections");
        Assert.True(inflated >= 3, $"only {inflated} sections were compressed");
    }

    /// <summary>The compressed .debug_info of a fixture, as raw section bytes.</summary>
    private static byte[] CompressedInfo(string build)
    {
        using var elf = ElfFile.Open(DwarfFixtures.Get(build));
        var s = elf.FindSection(".debug_info") ?? elf.FindSection(".zdebug_info")!;
        Assert.True(ElfSectionDecompressor.IsCompressed(s));
        return elf.GetSectionBytes(s).ToArray();
    }

    public static TheoryData<string, int, ulong> Damage() => new()
    {
        { "gcc-O2-gz-zlib", 0, 7 },                      // unknown ch_type
        { "gcc-O2-gz-zlib", 8, 1UL << 40 },              // ch_size far beyond what the stream can hold
        { "gcc-O2-gz-zlib", 8, 1 },                      // ch_size smaller than the stream
        { "gcc-O2-gz-zlib", 8, 100000 },                 // ch_size larger than the stream
        { "gcc-O2-objcopy-zstd", 8, 1 },
        { "gcc-O2-objcopy-zstd", 8, 100000 },
        { "gcc-O2-objcopy-zstd", 24, 0xdeadbeef },       // the zstd frame magic
        { "gcc-O2-gz-zlib", 24, 0xdeadbeef },            // the zlib stream header
        { "gcc-O2-gz-zlib", 40, 0x0123456789abcdef },    // inside the deflate stream
    };

    [Theory, MemberData(nameof(Damage))]
    public void DamagedCompressedSectionsAreBadInput(string build, int offset, ulong value)
    {
        byte[] raw = CompressedInfo(build);
        byte[] good = ElfSectionDecompressor.DecompressGabi(raw, build);
        if (offset == 0) BinaryPrimitives.WriteUInt32LittleEndian(raw, (uint)value);
        else BinaryPrimitives.WriteUInt64LittleEndian(raw.AsSpan(offset), value);
        Assert.Throws<BadInputFormatException>(() => ElfSectionDecompressor.DecompressGabi(raw, build));
        // Truncated streams: an error, or (when only the checksum trailer is cut) the same bytes.
        byte[] intact = CompressedInfo(build);
        for (int n = 0; n < intact.Length; n += n < 32 ? 1 : 37)
            AssertBadOrSame(good, () => ElfSectionDecompressor.DecompressGabi(intact.AsSpan(0, n), build));
    }

    [Fact]
    public void DamagedZdebugSectionsAreBadInput()
    {
        byte[] raw = CompressedInfo("gcc-O2-objcopy-zlib-gnu");
        Assert.True(ElfSectionDecompressor.DecompressZdebug(raw, "ok").Length > raw.Length);
        byte[] magic = (byte[])raw.Clone();
        magic[0] = (byte)'X';
        Assert.Throws<BadInputFormatException>(() => ElfSectionDecompressor.DecompressZdebug(magic, "magic"));
        byte[] huge = (byte[])raw.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(huge.AsSpan(4), 1UL << 50);
        Assert.Throws<BadInputFormatException>(() => ElfSectionDecompressor.DecompressZdebug(huge, "size"));
        byte[] good = ElfSectionDecompressor.DecompressZdebug(raw, "ok");
        for (int n = 0; n < raw.Length - 1; n += 7)
            AssertBadOrSame(good, () => ElfSectionDecompressor.DecompressZdebug(raw.AsSpan(0, n), "truncated"));
        Assert.Throws<BadInputFormatException>(() => ElfSectionDecompressor.DecompressZdebug(raw.AsSpan(0, raw.Length / 2), "half"));
    }

    private static void AssertBadOrSame(byte[] good, Func<byte[]> decode)
    {
        byte[] result;
        try { result = decode(); }
        catch (BadInputFormatException) { return; }
        Assert.Equal(good, result);
    }
}
