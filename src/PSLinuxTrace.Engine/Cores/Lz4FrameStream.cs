using System.Buffers.Binary;
using System.IO.Hashing;
using K4os.Compression.LZ4;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// Reads LZ4 frames (lz4_Frame_format.md: what lz4(1) and liblz4's LZ4F API write, so systemd-coredump's
/// .lz4 cores) and yields their content. Blocks are decoded by K4os' LZ4Codec, linked blocks with the
/// last 64 KiB as their dictionary. Unlike K4os' own LZ4Stream it checks the header checksum, each
/// block checksum and the XXH32 content checksum when the frame has them, and the declared content
/// size: damage is an <see cref="InvalidDataException"/>, never silently wrong bytes. Concatenated
/// and skippable frames are read as lz4(1) reads them; legacy frames (lz4 -l) and dictionaries are not.
/// </summary>
internal sealed class Lz4FrameStream(Stream compressed) : ReadOnlyForwardStream
{
    private const uint FrameMagic = 0x184D2204, SkippableMagic = 0x184D2A50, SkippableMask = 0xFFFFFFF0;
    private const int HistorySize = 64 << 10; // how far back a linked block may copy from

    private sealed record Frame(bool Independent, bool BlockChecksum, bool ContentChecksum, ulong? ContentSize, int MaxBlockSize);

    private Frame? _frame;
    private readonly XxHash32 _contentHash = new();
    private ulong _frameBytes;
    private byte[] _block = [];
    // Decoded bytes: the history linked blocks refer to, then the block just decoded.
    private byte[] _window = [];
    private int _windowEnd, _pendingStart;

    public override int Read(Span<byte> buffer)
    {
        while (_pendingStart == _windowEnd)
            if (!DecodeNextBlock()) return 0;
        int n = Math.Min(buffer.Length, _windowEnd - _pendingStart);
        _window.AsSpan(_pendingStart, n).CopyTo(buffer);
        _pendingStart += n;
        return n;
    }

    /// <summary>Decodes one block into the window (none at a frame's end); false at the end of the file.</summary>
    private bool DecodeNextBlock()
    {
        if (_frame is null && !StartFrame()) return false;
        var frame = _frame!;
        uint size = ReadU32("a block size");
        if (size == 0)
        {
            EndFrame(frame);
            return true;
        }
        bool stored = (size & 0x8000_0000) != 0; // the high bit: the block is stored uncompressed
        int length = (int)(size & 0x7fff_ffff);
        if (length > frame.MaxBlockSize) throw new InvalidDataException($"an LZ4 block of {length} bytes exceeds the frame's maximum block size ({frame.MaxBlockSize}).");
        ReadExactly(_block.AsSpan(0, length), "a block");
        if (frame.BlockChecksum && ReadU32("a block checksum") != XxHash32.HashToUInt32(_block.AsSpan(0, length)))
            throw new InvalidDataException("an LZ4 block does not match its checksum.");
        MakeRoom(frame);
        var target = _window.AsSpan(_windowEnd, frame.MaxBlockSize);
        int n;
        if (stored)
        {
            _block.AsSpan(0, length).CopyTo(target);
            n = length;
        }
        else
        {
            int historyStart = frame.Independent ? _windowEnd : Math.Max(0, _windowEnd - HistorySize);
            n = LZ4Codec.Decode(_block.AsSpan(0, length), target, _window.AsSpan(historyStart, _windowEnd - historyStart));
            if (n < 0) throw new InvalidDataException("an LZ4 block is corrupt (it does not decode).");
        }
        _contentHash.Append(target[..n]);
        _frameBytes += (ulong)n;
        if (frame.ContentSize is { } declared && _frameBytes > declared)
            throw new InvalidDataException($"an LZ4 frame holds more than the {declared} bytes its header declares.");
        _pendingStart = _windowEnd;
        _windowEnd += n;
        return true;
    }

    /// <summary>Keeps the last 64 KiB of a linked frame before the next block; an independent block needs none.</summary>
    private void MakeRoom(Frame frame)
    {
        if (frame.Independent) _windowEnd = 0;
        if (_windowEnd + frame.MaxBlockSize <= _window.Length) return;
        int keep = Math.Min(_windowEnd, HistorySize);
        _window.AsSpan(_windowEnd - keep, keep).CopyTo(_window);
        _windowEnd = keep;
    }

    /// <summary>Reads up to the next frame's header (skipping skippable frames); false at the end of the file.</summary>
    private bool StartFrame()
    {
        while (true)
        {
            Span<byte> word = stackalloc byte[4];
            int got = compressed.ReadAtLeast(word, 4, throwOnEndOfStream: false);
            if (got == 0) return false;
            if (got < 4) throw new InvalidDataException("the file ends inside an LZ4 frame's magic number.");
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(word);
            if ((magic & SkippableMask) == SkippableMagic)
            {
                Skip(ReadU32("a skippable frame's size"));
                continue;
            }
            if (magic != FrameMagic) throw new InvalidDataException($"0x{magic:x8} is not an LZ4 frame's magic number (legacy frames, lz4 -l, are not read).");
            _frame = ReadFrameDescriptor();
            _frameBytes = 0;
            _contentHash.Reset();
            _windowEnd = _pendingStart = 0;
            int windowSize = HistorySize + 2 * _frame.MaxBlockSize;
            if (_window.Length < windowSize) _window = new byte[windowSize];
            if (_block.Length < _frame.MaxBlockSize) _block = new byte[_frame.MaxBlockSize];
            return true;
        }
    }

    /// <summary>FLG, BD, the optional content size and dictionary id, and the header checksum HC.</summary>
    private Frame ReadFrameDescriptor()
    {
        Span<byte> d = stackalloc byte[15];
        ReadExactly(d[..2], "a frame descriptor");
        byte flg = d[0], bd = d[1];
        if (flg >> 6 != 1) throw new InvalidDataException($"LZ4 frame version {flg >> 6} is not 1.");
        if ((flg & 0x02) != 0 || (bd & 0x8f) != 0) throw new InvalidDataException("an LZ4 frame descriptor sets reserved bits.");
        int sizeId = (bd >> 4) & 7;
        if (sizeId < 4) throw new InvalidDataException($"LZ4 block maximum size id {sizeId} is not 4-7.");
        bool hasSize = (flg & 0x08) != 0, hasDictionary = (flg & 0x01) != 0;
        int length = 2 + (hasSize ? 8 : 0) + (hasDictionary ? 4 : 0);
        ReadExactly(d[2..(length + 1)], "a frame descriptor");
        if (d[length] != (byte)(XxHash32.HashToUInt32(d[..length]) >> 8))
            throw new InvalidDataException("an LZ4 frame descriptor does not match its header checksum.");
        if (hasDictionary) throw new InvalidDataException("the LZ4 frame needs a dictionary (DictID), which a core never has.");
        return new Frame(
            Independent: (flg & 0x20) != 0, BlockChecksum: (flg & 0x10) != 0, ContentChecksum: (flg & 0x04) != 0,
            ContentSize: hasSize ? BinaryPrimitives.ReadUInt64LittleEndian(d[2..]) : null,
            MaxBlockSize: 1 << (8 + 2 * sizeId)); // 4: 64 KiB, 5: 256 KiB, 6: 1 MiB, 7: 4 MiB
    }

    private void EndFrame(Frame frame)
    {
        if (frame.ContentChecksum && ReadU32("the content checksum") != _contentHash.GetCurrentHashAsUInt32())
            throw new InvalidDataException("the LZ4 frame's content does not match its checksum.");
        if (frame.ContentSize is { } declared && _frameBytes != declared)
            throw new InvalidDataException($"an LZ4 frame holds {_frameBytes} bytes, not the {declared} its header declares.");
        _frame = null;
    }

    private uint ReadU32(string what)
    {
        Span<byte> b = stackalloc byte[4];
        ReadExactly(b, what);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private void ReadExactly(Span<byte> buffer, string what)
    {
        if (compressed.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false) < buffer.Length)
            throw new EndOfStreamException($"the file ends inside {what} of an LZ4 frame.");
    }

    private void Skip(uint length)
    {
        var scratch = new byte[Math.Min(length, 1u << 16)];
        for (uint left = length; left > 0;)
        {
            int n = compressed.Read(scratch, 0, (int)Math.Min(left, (uint)scratch.Length));
            if (n <= 0) throw new EndOfStreamException("the file ends inside a skippable LZ4 frame.");
            left -= (uint)n;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) compressed.Dispose();
        base.Dispose(disposing);
    }
}
