namespace PSLinuxTrace.Engine.Memory;

/// <summary>The bytes of one file, read at an offset: what a <see cref="CoreAddressSpace"/> reads its segments and mapped files from.</summary>
public interface IFileContents
{
    /// <summary>Reads up to <c>buffer.Length</c> bytes at <paramref name="offset"/>; short (or 0) at the end of the file.</summary>
    int Read(ulong offset, Span<byte> buffer);
}

/// <summary>A file opened for each read and closed after it, so whoever holds this holds no handle.</summary>
public sealed class FileAtPath(string path) : IFileContents
{
    public string Path { get; } = path;

    /// <summary>IOException (FileNotFoundException for a file gone) and UnauthorizedAccessException pass through.</summary>
    public int Read(ulong offset, Span<byte> buffer)
    {
        if (offset > long.MaxValue) return 0;
        using var handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        int done = 0;
        while (done < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[done..], (long)offset + done);
            if (n <= 0) break;
            done += n;
        }
        return done;
    }
}
