using System.Buffers.Binary;
using System.IO.Compression;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// The uncompressed bytes of a compressed ELF section: SHF_COMPRESSED with an Elf64_Chdr and
/// ELFCOMPRESS_ZLIB or ELFCOMPRESS_ZSTD (gABI "Section Compression"; gcc -gz, objcopy
/// --compress-debug-sections, ld --compress-debug-sections), and the legacy GNU .zdebug_* form
/// ("ZLIB" + 8-byte big-endian size + zlib stream). The size a header claims is checked against
/// what its stream can plausibly hold before anything is allocated, and the stream must yield
/// exactly that many bytes.
/// </summary>
public static class ElfSectionDecompressor
{
    public const ulong SHF_COMPRESSED = 0x800;
    public const uint ELFCOMPRESS_ZLIB = 1, ELFCOMPRESS_ZSTD = 2;
    private const int ChdrSize = 24; // Elf64_Chdr: ch_type(4) ch_reserved(4) ch_size(8) ch_addralign(8)

    // zlib's deflate cannot expand more than ~1032:1; zstd's RLE blocks can go further, but no
    // debug section does. Beyond these a header's size is damage, not data.
    private const ulong MaxZlibRatio = 1100, MaxZstdRatio = 8192, MaxSize = 1UL << 30;

    /// <summary>True when the section is SHF_COMPRESSED or a legacy .zdebug_* section.</summary>
    public static bool IsCompressed(ElfSection section) =>
        (section.Flags & SHF_COMPRESSED) != 0 || section.Name.StartsWith(".zdebug", StringComparison.Ordinal);

    /// <summary>The section's uncompressed bytes; a copy of them when it is not compressed.</summary>
    public static byte[] GetUncompressedBytes(ElfFile elf, ElfSection section)
    {
        var raw = elf.GetSectionBytes(section);
        if ((section.Flags & SHF_COMPRESSED) != 0) return DecompressGabi(raw, $"{elf.Name} {section.Name}");
        if (section.Name.StartsWith(".zdebug", StringComparison.Ordinal)) return DecompressZdebug(raw, $"{elf.Name} {section.Name}");
        return raw.ToArray();
    }

    /// <summary>Decompresses an SHF_COMPRESSED section's bytes (Elf64_Chdr first).</summary>
    public static byte[] DecompressGabi(ReadOnlySpan<byte> raw, string what)
    {
        if (raw.Length < ChdrSize) throw new BadInputFormatException($"{what}: compressed section is shorter than its 24-byte header.");
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(raw);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(raw[8..]);
        var stream = raw[ChdrSize..];
        return type switch
        {
            ELFCOMPRESS_ZLIB => Inflate(stream, CheckSize(size, stream.Length, MaxZlibRatio, what), what),
            ELFCOMPRESS_ZSTD => Unzstd(stream, CheckSize(size, stream.Length, MaxZstdRatio, what), what),
            _ => throw new BadInputFormatException($"{what}: unknown compression type {type} (ELFCOMPRESS_ZLIB is 1, ELFCOMPRESS_ZSTD 2)."),
        };
    }

    /// <summary>Decompresses a legacy .zdebug_* section ("ZLIB", big-endian size, zlib stream).</summary>
    public static byte[] DecompressZdebug(ReadOnlySpan<byte> raw, string what)
    {
        if (raw.Length < 12 || !raw[..4].SequenceEqual("ZLIB"u8))
            throw new BadInputFormatException($"{what}: a .zdebug section must start with \"ZLIB\" and an 8-byte size.");
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(raw[4..]);
        var stream = raw[12..];
        return Inflate(stream, CheckSize(size, stream.Length, MaxZlibRatio, what), what);
    }

    private static int CheckSize(ulong size, int compressed, ulong ratio, string what)
    {
        if (size > MaxSize || size > (ulong)compressed * ratio + 4096)
            throw new BadInputFormatException($"{what}: claims {size} uncompressed bytes from {compressed} compressed ones.");
        return (int)size;
    }

    private static byte[] Inflate(ReadOnlySpan<byte> stream, int size, string what)
    {
        var output = new byte[size];
        try
        {
            using var input = new MemoryStream(stream.ToArray(), writable: false);
            using var z = new ZLibStream(input, CompressionMode.Decompress);
            int filled = 0;
            while (filled < size)
            {
                int n = z.Read(output, filled, size - filled);
                if (n == 0) break;
                filled += n;
            }
            if (filled != size || z.ReadByte() >= 0)
                throw new BadInputFormatException($"{what}: the zlib stream holds {(filled == size ? "more than" : filled)} bytes, its header says {size}.");
        }
        catch (InvalidDataException ex)
        {
            throw new BadInputFormatException($"{what}: damaged zlib stream: {ex.Message}", ex);
        }
        return output;
    }

    private static byte[] Unzstd(ReadOnlySpan<byte> stream, int size, string what)
    {
        var output = new byte[size];
        int written;
        try
        {
            using var z = new ZstdSharp.Decompressor();
            if (!z.TryUnwrap(stream, output, out written))
                throw new BadInputFormatException($"{what}: the zstd stream holds more than the {size} bytes its header says.");
        }
        // A third-party decoder: whatever it throws on bad bytes (ZstdException, or an argument or
        // index error from a corrupt frame) is the input's fault, so it becomes the input's error.
        catch (Exception ex) when (ex is ZstdSharp.ZstdException or ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            throw new BadInputFormatException($"{what}: damaged zstd stream: {ex.Message}", ex);
        }
        if (written != size) throw new BadInputFormatException($"{what}: the zstd stream holds {written} bytes, its header says {size}.");
        return output;
    }
}
