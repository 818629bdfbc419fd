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
    public static byte[] GetUncompressedBytes(ElfFile elf, ElfSection section) =>
        IsCompressed(section) ? Open(elf, section).All() : elf.GetSectionBytes(section).ToArray();

    /// <summary>Decompresses an SHF_COMPRESSED section's bytes (Elf64_Chdr first).</summary>
    public static byte[] DecompressGabi(ReadOnlySpan<byte> raw, string what) => OpenGabi(raw, what).All();

    /// <summary>Decompresses a legacy .zdebug_* section ("ZLIB", big-endian size, zlib stream).</summary>
    public static byte[] DecompressZdebug(ReadOnlySpan<byte> raw, string what) => OpenZdebug(raw, what).All();

    /// <summary>A compressed section, to inflate as far as its readers need.</summary>
    internal static InflatingSection Open(ElfFile elf, ElfSection section)
    {
        string what = $"{elf.Name} {section.Name}";
        var raw = elf.GetSectionBytes(section);
        return (section.Flags & SHF_COMPRESSED) != 0 ? OpenGabi(raw, what) : OpenZdebug(raw, what);
    }

    private static InflatingSection OpenGabi(ReadOnlySpan<byte> raw, string what)
    {
        if (raw.Length < ChdrSize) throw new BadInputFormatException($"{what}: compressed section is shorter than its 24-byte header.");
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(raw);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(raw[8..]);
        var stream = new MemoryStream(raw[ChdrSize..].ToArray(), writable: false);
        return type switch
        {
            ELFCOMPRESS_ZLIB => new InflatingSection(new ZLibStream(stream, CompressionMode.Decompress), CheckSize(size, stream.Length, MaxZlibRatio, what), what),
            ELFCOMPRESS_ZSTD => new InflatingSection(new ZstdSharp.DecompressionStream(stream), CheckSize(size, stream.Length, MaxZstdRatio, what), what),
            _ => throw new BadInputFormatException($"{what}: unknown compression type {type} (ELFCOMPRESS_ZLIB is 1, ELFCOMPRESS_ZSTD 2)."),
        };
    }

    private static InflatingSection OpenZdebug(ReadOnlySpan<byte> raw, string what)
    {
        if (raw.Length < 12 || !raw[..4].SequenceEqual("ZLIB"u8))
            throw new BadInputFormatException($"{what}: a .zdebug section must start with \"ZLIB\" and an 8-byte size.");
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(raw[4..]);
        var stream = new MemoryStream(raw[12..].ToArray(), writable: false);
        return new InflatingSection(new ZLibStream(stream, CompressionMode.Decompress), CheckSize(size, stream.Length, MaxZlibRatio, what), what);
    }

    private static int CheckSize(ulong size, long compressed, ulong ratio, string what)
    {
        if (size > MaxSize || size > (ulong)compressed * ratio + 4096)
            throw new BadInputFormatException($"{what}: claims {size} uncompressed bytes from {compressed} compressed ones.");
        return (int)size;
    }
}

/// <summary>
/// A compressed section inflated only as far as readers have asked: a lookup in the first units
/// of a 6 MB .debug_info does not pay for the rest. Thread-safe; a damaged stream fails every
/// later read the same way.
/// </summary>
internal sealed class InflatingSection
{
    private const int Step = 256 << 10;
    private readonly object _gate = new();
    private readonly byte[] _buffer;
    private readonly string _what;
    private Stream? _decoder;
    private int _available;
    private BadInputFormatException? _error;

    public InflatingSection(Stream decoder, int size, string what)
    {
        _decoder = decoder;
        _buffer = new byte[size];
        _what = what;
    }

    public int Size => _buffer.Length;

    /// <summary>The inflated bytes from the start through at least <paramref name="end"/> (all of them past the size).</summary>
    public ReadOnlySpan<byte> Prefix(ulong end)
    {
        lock (_gate)
        {
            int want = end >= (ulong)_buffer.Length ? _buffer.Length : (int)end;
            while (_available < want) InflateMore(want);
            return _buffer.AsSpan(0, _available);
        }
    }

    /// <summary>Everything, inflated.</summary>
    public byte[] All()
    {
        Prefix(ulong.MaxValue);
        return _buffer;
    }

    private void InflateMore(int want)
    {
        if (_error is not null) throw _error;
        try
        {
            int target = Math.Min(_buffer.Length, Math.Max(want, _available + Step));
            while (_available < target)
            {
                int n = _decoder!.Read(_buffer, _available, target - _available);
                if (n == 0) throw new BadInputFormatException($"{_what}: the compressed stream holds {_available} bytes, its header says {_buffer.Length}.");
                _available += n;
            }
            if (_available == _buffer.Length)
            {
                if (_decoder!.ReadByte() >= 0) throw new BadInputFormatException($"{_what}: the compressed stream holds more than the {_buffer.Length} bytes its header says.");
                _decoder.Dispose();
                _decoder = null;
            }
        }
        // The decoders' own errors on bad bytes are the input's fault: from zlib InvalidDataException
        // or ZLibException (an IOException); from zstd ZstdException, EndOfStreamException, or an
        // argument or index error from a corrupt frame. They read from memory: no real I/O can fail.
        catch (Exception ex) when (ex is InvalidDataException or IOException or ZstdSharp.ZstdException or ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            _error = new BadInputFormatException($"{_what}: damaged compressed stream: {ex.Message}", ex);
        }
        catch (BadInputFormatException ex)
        {
            _error = ex;
        }
        if (_error is not null)
        {
            _decoder?.Dispose();
            _decoder = null;
            throw _error;
        }
    }
}
