namespace PSLinuxTrace.Engine.Memory;

/// <summary>
/// A dumped process's memory: each byte from the core (a PT_LOAD segment's file image), else from a
/// mapped file the core left out (kernel cores omit file-backed text), else nowhere. The same map
/// reads through open, memory-mapped files while a core is read, and by path once it is
/// <see cref="Detach"/>ed, so an output object can hold it without a handle.
/// </summary>
public sealed class CoreAddressSpace : IAddressSpace
{
    /// <summary>One PT_LOAD segment: [Start, End) in memory, the first <see cref="BytesInFile"/> of it at <see cref="FileOffset"/> in the core.</summary>
    public readonly record struct Segment(ulong Start, ulong End, ulong FileOffset, ulong BytesInFile);

    /// <summary>Memory [Start, End) that the file at <see cref="Path"/> holds from <see cref="FileOffset"/> on.</summary>
    public readonly record struct FileRange(ulong Start, ulong End, ulong FileOffset, string Path);

    private readonly IFileContents _core;
    private readonly Segment[] _segments;
    // Sorted by Start; mappings of one process do not overlap.
    private readonly List<(FileRange Range, IFileContents Contents)> _files = new();

    /// <param name="corePath">the core file, named in errors and reopened by <see cref="Detach"/></param>
    /// <param name="core">the core's bytes (its open mapping, or <see cref="FileAtPath"/>)</param>
    /// <param name="segments">its PT_LOAD segments, in any order</param>
    public CoreAddressSpace(string corePath, IFileContents core, IEnumerable<Segment> segments)
    {
        CorePath = corePath;
        _core = core;
        _segments = segments.OrderBy(s => s.Start).ToArray();
    }

    public string CorePath { get; }
    public IReadOnlyList<Segment> Segments => _segments;
    public IReadOnlyList<FileRange> Files => _files.Select(f => f.Range).ToArray();

    /// <summary>Makes <paramref name="range"/> readable from <paramref name="contents"/> (a local copy of the mapped file, checked by the caller to be the right one).</summary>
    public void AddFile(FileRange range, IFileContents contents)
    {
        int at = _files.FindIndex(f => f.Range.Start > range.Start);
        _files.Insert(at < 0 ? _files.Count : at, (range, contents));
    }

    /// <summary>
    /// The same memory, read by path for each call: holds no handle (for output objects). The core's
    /// bytes come from <paramref name="core"/> when given (a compressed core's), else from the file at CorePath.
    /// </summary>
    public CoreAddressSpace Detach(IFileContents? core = null)
    {
        // Absolute now: a detached map outlives this call, and the working directory may change.
        var detached = new CoreAddressSpace(CorePath, core ?? new FileAtPath(System.IO.Path.GetFullPath(CorePath)), _segments);
        foreach (var (range, _) in _files) detached._files.Add((range, new FileAtPath(range.Path)));
        return detached;
    }

    public int Read(ulong address, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = ReadOneSource(address + (ulong)done, buffer[done..]);
            if (n <= 0) break;
            done += n;
        }
        return done;
    }

    /// <summary>As many bytes as the one source holding <paramref name="address"/> has there.</summary>
    private int ReadOneSource(ulong address, Span<byte> buffer)
    {
        if (FindSegment(address) is { } s && address - s.Start < s.BytesInFile)
        {
            int want = (int)Math.Min((ulong)buffer.Length, s.BytesInFile - (address - s.Start));
            return _core.Read(s.FileOffset + (address - s.Start), buffer[..want]);
        }
        if (FindFile(address) is not var (range, contents)) return 0;
        int len = (int)Math.Min((ulong)buffer.Length, range.End - address);
        try
        {
            return contents.Read(range.FileOffset + (address - range.Start), buffer[..len]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0; // the local file went away since it was checked: that memory is just missing
        }
    }

    /// <summary>The segment whose memory holds <paramref name="address"/>, whether or not the core holds its bytes.</summary>
    public Segment? FindSegment(ulong address)
    {
        int lo = 0, hi = _segments.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var s = _segments[mid];
            if (address < s.Start) hi = mid - 1;
            else if (address >= s.End) lo = mid + 1;
            else return s;
        }
        return null;
    }

    private (FileRange, IFileContents)? FindFile(ulong address)
    {
        int lo = 0, hi = _files.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var f = _files[mid];
            if (address < f.Range.Start) hi = mid - 1;
            else if (address >= f.Range.End) lo = mid + 1;
            else return f;
        }
        return null;
    }
}
