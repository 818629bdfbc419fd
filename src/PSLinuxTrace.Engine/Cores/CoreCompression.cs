using SharpCompress.Compressors.Xz;
using ZstdSharp;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>How a core file is compressed: systemd-coredump's Compression= (zstd by default, lz4, xz), or not at all.</summary>
public enum CoreCompression
{
    None,
    Zstd,
    Lz4,
    Xz,
}

/// <summary>
/// Recognizes a compressed core by its first bytes (not its name: a core renamed, or a name without
/// the suffix, reads the same) and opens a forward-only decoder over it. Every decoder checks the
/// format's own checksum where the file has one, so a corrupt core is an error, not wrong memory.
/// </summary>
internal static class CoreDecompressor
{
    // Frame magics: zstd (RFC 8878 3.1.1), LZ4 frame (lz4_Frame_format.md), xz (xz-file-format 2.1.1.1).
    private static ReadOnlySpan<byte> ZstdMagic => [0x28, 0xb5, 0x2f, 0xfd];
    private static ReadOnlySpan<byte> Lz4Magic => [0x04, 0x22, 0x4d, 0x18];
    private static ReadOnlySpan<byte> XzMagic => [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

    /// <summary>Bytes enough for <see cref="Detect(ReadOnlySpan{byte})"/>.</summary>
    public const int MagicLength = 6;

    public static CoreCompression Detect(ReadOnlySpan<byte> start) =>
        start.StartsWith(ZstdMagic) ? CoreCompression.Zstd
        : start.StartsWith(Lz4Magic) ? CoreCompression.Lz4
        : start.StartsWith(XzMagic) ? CoreCompression.Xz
        : CoreCompression.None;

    /// <summary>The compression of the file at <paramref name="path"/> (None for anything else, ELF or not). I/O errors pass through.</summary>
    public static CoreCompression Detect(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        Span<byte> start = stackalloc byte[MagicLength];
        int got = RandomAccess.Read(handle, start, 0);
        return Detect(start[..got]);
    }

    /// <summary>The suffix systemd-coredump gives such a file (zst, lz4, xz).</summary>
    public static string Name(CoreCompression compression) => compression switch
    {
        CoreCompression.Zstd => "zstd",
        CoreCompression.Lz4 => "lz4",
        CoreCompression.Xz => "xz",
        _ => "none",
    };

    /// <summary>A decoder that reads <paramref name="compressed"/> (and disposes it) and yields the core's bytes.</summary>
    public static Stream OpenDecoder(Stream compressed, CoreCompression compression) => compression switch
    {
        // ZstdSharp checks the frame's XXH64 content checksum and reads concatenated and skippable frames.
        CoreCompression.Zstd => new DecompressionStream(compressed, leaveOpen: false),
        // K4os' LZ4Stream does not check the content checksum (its PR #78 is still open): our own frame reader does.
        CoreCompression.Lz4 => new Lz4FrameStream(compressed),
        CoreCompression.Xz => new ConcatenatedXzStream(compressed),
        _ => throw new ArgumentOutOfRangeException(nameof(compression)),
    };

    /// <summary>
    /// One xz stream after another, as xz(1) reads them (xz-file-format 2.2: streams may be concatenated,
    /// with stream padding of zero bytes in multiples of four between them). SharpCompress' XZStream
    /// reads one stream, checks each block's check (CRC32/CRC64/SHA-256) and stops at its footer.
    /// </summary>
    private sealed class ConcatenatedXzStream(Stream compressed) : ReadOnlyForwardStream
    {
        private XZStream? _current = new(compressed);

        public override int Read(Span<byte> buffer)
        {
            while (_current is not null)
            {
                int n = _current.Read(buffer);
                if (n > 0 || buffer.Length == 0) return n;
                _current = NextStream();
            }
            return 0;
        }

        private XZStream? NextStream()
        {
            Span<byte> word = stackalloc byte[4];
            while (true)
            {
                int got = compressed.ReadAtLeast(word, 4, throwOnEndOfStream: false);
                if (got == 0) return null;
                if (got < 4) throw new InvalidDataException("the file ends inside stream padding (xz-file-format 2.2).");
                if (word.IndexOfAnyExcept((byte)0) < 0) continue; // stream padding
                Span<byte> magic = stackalloc byte[MagicLength];
                word.CopyTo(magic);
                if (compressed.ReadAtLeast(magic[4..], 2, throwOnEndOfStream: false) < 2 || !magic.SequenceEqual(XzMagic))
                    throw new InvalidDataException("data after the end of the xz stream is neither stream padding nor another xz stream.");
                compressed.Seek(-MagicLength, SeekOrigin.Current);
                return new XZStream(compressed);
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) compressed.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>The Stream boilerplate of a decoder: readable, forward only, not seekable.</summary>
internal abstract class ReadOnlyForwardStream : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public abstract override int Read(Span<byte> buffer);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
