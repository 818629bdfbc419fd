using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// Decompresses a compressed core into a temporary file that <see cref="CoreFile"/> maps like any core,
/// streaming (memory stays at the decoder's window and one 1 MiB buffer, whatever the core's size).
/// The file is unlinked as soon as it is created, so it goes away when its handle closes: after the
/// read, on an error, on Ctrl+C, and even when the process is killed. It is created 0600 (a core holds
/// the process's memory), in $TMPDIR, or beside the core when only that has room for it, and written
/// sparse: 4 KiB pages of zeros, and the big anonymous segments <see cref="CoreKeepPlan"/> leaves out, are holes.
/// </summary>
internal static class CoreInflater
{
    private const int ChunkSize = 1 << 20, PageSize = 4096;

    /// <summary>
    /// The decompressed core, open for reading (its file already unlinked), and what it left out (null:
    /// nothing). Corrupt or cut-short data is a <see cref="BadInputFormatException"/> that says how far
    /// decompression got; a failed write is an IOException.
    /// </summary>
    /// <param name="progress">called after each 1 MiB decompressed: compressed bytes read so far, and of how many</param>
    public static (FileStream File, CoreKeepPlan? Plan) Inflate(string path, CoreCompression compression, ILogger log, CancellationToken cancel,
        Action<long, long>? progress = null)
    {
        var clock = Stopwatch.StartNew();
        var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
        long compressedSize = input.Length, decoded = 0;
        BadInputFormatException Corrupt(Exception ex) => new(
            $"{path}: the {CoreDecompressor.Name(compression)} data is corrupt or cut short: decompression stopped after " +
            $"{input.Position} of its {compressedSize} bytes, with {decoded} bytes of the core decompressed ({ex.Message})", ex);
        Stream decoder;
        try
        {
            decoder = CoreDecompressor.OpenDecoder(input, compression);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            var error = Corrupt(ex);
            input.Dispose();
            throw error;
        }
        using var _ = decoder;
        int Next(Span<byte> into)
        {
            cancel.ThrowIfCancellationRequested();
            try
            {
                int n = decoder.ReadAtLeast(into, into.Length, throwOnEndOfStream: false);
                decoded += n;
                return n;
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
            {
                throw Corrupt(ex);
            }
        }

        // The core's start, through its notes: what to leave out is decided from it before anything is written.
        byte[] head = new byte[ChunkSize];
        int headLength = Next(head);
        if (headLength == 0) throw new BadInputFormatException($"{path}: the {CoreDecompressor.Name(compression)} data decompresses to nothing.");
        var peek = CoreKeepPlan.Peek(head.AsSpan(0, headLength));
        if (peek is { HeadLength: var need } && need > (ulong)headLength && headLength == head.Length && need <= CoreKeepPlan.MaxHeadSize)
        {
            Array.Resize(ref head, (int)((need + ChunkSize - 1) / ChunkSize * ChunkSize));
            headLength += Next(head.AsSpan(headLength));
        }
        var plan = peek is { } p && p.HeadLength <= (ulong)headLength ? CoreKeepPlan.From(head[..headLength], path) : null;

        var output = CreateTemporary(path, peek is { } q ? q.Length - (plan?.DroppedBytes ?? 0) : null, log);
        try
        {
            string where = Path.GetDirectoryName(output.Name) ?? ".";
            long total = 0;
            void Write(ReadOnlySpan<byte> data)
            {
                foreach (var (start, length) in plan?.Kept((ulong)total, data.Length) ?? [(0, data.Length)])
                    WriteSparse(output, data.Slice(start, length), total + start, where);
                total += data.Length;
                progress?.Invoke(input.Position, compressedSize);
            }
            Write(head.AsSpan(0, headLength));
            var chunk = head.Length == ChunkSize ? head : new byte[ChunkSize];
            for (int n; (n = Next(chunk)) > 0;) Write(chunk.AsSpan(0, n));
            output.SetLength(total); // a run of zeros at the end is a hole too
            log.LogInformation("{Path}: {Compression}, {Compressed} bytes decompressed to {Total} in {Ms} ms, into a temporary file in {Dir} " +
                "(removed after) that leaves out {Dropped} bytes of big anonymous memory no stack is in.",
                path, CoreDecompressor.Name(compression), compressedSize, total, clock.ElapsedMilliseconds, where, plan?.DroppedBytes ?? 0);
            return (output, plan);
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    /// <summary>Writes the pages of <paramref name="data"/> that are not all zeros at <paramref name="offset"/> on.</summary>
    private static void WriteSparse(FileStream output, ReadOnlySpan<byte> data, long offset, string where)
    {
        for (int at = 0; at < data.Length;)
        {
            int start = at;
            while (start < data.Length && IsZeroPage(data, start)) start += PageSize;
            if (start >= data.Length) return;
            int end = start;
            while (end < data.Length && !IsZeroPage(data, end)) end += PageSize;
            end = Math.Min(end, data.Length);
            try
            {
                RandomAccess.Write(output.SafeFileHandle, data[start..end], offset + start);
            }
            catch (IOException ex)
            {
                throw new IOException($"Writing the decompressed core into {where} failed at byte {offset + start} ({ex.Message}). " +
                    "Set TMPDIR to a directory with room for the whole core.", ex);
            }
            at = end;
        }
    }

    private static bool IsZeroPage(ReadOnlySpan<byte> data, int at) =>
        data.Slice(at, Math.Min(PageSize, data.Length - at)).IndexOfAnyExcept((byte)0) < 0;

    /// <summary>A new, already unlinked, owner-only file in $TMPDIR, or beside the core when $TMPDIR lacks room for <paramref name="expected"/> bytes and the core's folder has more.</summary>
    private static FileStream CreateTemporary(string path, ulong? expected, ILogger log)
    {
        string temp = Path.GetTempPath();
        string beside = Path.GetDirectoryName(Path.GetFullPath(path)) ?? temp;
        var folders = new List<string> { temp };
        long? tempFree = FreeSpace(temp);
        if (expected is { } need && tempFree is { } free && (ulong)free < need && FreeSpace(beside) > free)
        {
            log.LogInformation("{Temp} has {Free} bytes free, less than the {Need} the core may take: decompressing beside it, in {Beside}.", temp, free, need, beside);
            folders.Insert(0, beside);
        }
        else if (beside != temp) folders.Add(beside);
        Exception? last = null;
        foreach (string folder in folders)
        {
            string name = Path.Combine(folder, $".pslinuxtrace-{Path.GetFileName(path)}-{Guid.NewGuid():N}.core");
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.None, BufferSize = 0 };
                if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                var stream = new FileStream(name, options);
                File.Delete(name); // the open handle keeps the file; its name was needed only to create it
                return stream;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                last = ex;
                log.LogDebug("Cannot create a temporary file in {Folder}: {Message}", folder, ex.Message);
            }
        }
        throw new IOException($"{path}: no folder to decompress the core into ({string.Join(", ", folders)}): {last?.Message}", last);
    }

    private static long? FreeSpace(string folder)
    {
        try
        {
            return new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}
