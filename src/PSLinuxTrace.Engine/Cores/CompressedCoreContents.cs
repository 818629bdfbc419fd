using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// A compressed core's bytes for a <see cref="Model.CoreDump"/> that outlives its read (ReadMemory
/// after Read-CoreDump returned): the temporary file is gone by then, and none of systemd-coredump's
/// formats can be entered in the middle, so each read decompresses the file from its start up to the
/// bytes asked for, holding no handle between calls. The last 1 MiB read is kept, so reads near each
/// other (a stack, a structure and its pointers) cost one pass. Memory stays bounded by the decoder's
/// window and that 1 MiB; time grows with how far into the core the address lies.
/// </summary>
internal sealed class CompressedCoreContents(string path, CoreCompression compression) : IFileContents
{
    private const int ChunkSize = 1 << 20;
    private readonly object _gate = new();
    private byte[] _chunk = [];  // allocated on the first read: most cores are never read again
    private long _chunkStart = -1;
    private int _chunkLength;

    public string Path { get; } = path;

    public int Read(ulong offset, Span<byte> buffer)
    {
        if (offset > long.MaxValue || buffer.Length == 0) return 0;
        lock (_gate)
        {
            if (CopyFromChunk((long)offset, buffer) is var cached && cached == buffer.Length) return cached;
            return Decode((long)offset, buffer);
        }
    }

    /// <summary>What the kept chunk holds of [offset, offset + buffer.Length), copied; 0 unless it holds the start.</summary>
    private int CopyFromChunk(long offset, Span<byte> buffer)
    {
        if (_chunkStart < 0 || offset < _chunkStart || offset >= _chunkStart + _chunkLength) return 0;
        int at = (int)(offset - _chunkStart), n = Math.Min(buffer.Length, _chunkLength - at);
        _chunk.AsSpan(at, n).CopyTo(buffer);
        return n;
    }

    private int Decode(long offset, Span<byte> buffer)
    {
        if (_chunk.Length == 0) _chunk = new byte[ChunkSize];
        using var input = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
        using var decoder = CoreDecompressor.OpenDecoder(input, compression);
        long position = 0, first = offset / ChunkSize * ChunkSize;
        int done = 0;
        try
        {
            while (done < buffer.Length)
            {
                _chunkStart = -1;
                int n = decoder.ReadAtLeast(_chunk, ChunkSize, throwOnEndOfStream: false);
                if (n == 0) break;
                _chunkStart = position;
                _chunkLength = n;
                position += n;
                if (position > first) done += CopyFromChunk(offset + done, buffer[done..]);
            }
        }
        catch (Exception ex) when (ex is not IOException || ex is EndOfStreamException)
        {
            _chunkStart = -1;
            throw new BadInputFormatException($"{Path}: the {CoreDecompressor.Name(compression)} data is corrupt or cut short at byte {input.Position} ({ex.Message})", ex);
        }
        return done;
    }
}
