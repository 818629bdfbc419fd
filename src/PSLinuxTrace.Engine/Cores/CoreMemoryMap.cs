using Microsoft.Win32.SafeHandles;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// Where each byte of the dumped process's memory is: in the core (a PT_LOAD's file image), or in a
/// mapped file the core left out (text segments), or nowhere. Reads open the files on demand, so
/// the map can live in an output object without holding a handle.
/// </summary>
internal sealed class CoreMemoryMap
{
    internal readonly record struct Segment(ulong Start, ulong End, ulong FileOffset, ulong BytesInFile);
    internal readonly record struct FileBacked(ulong Start, ulong End, ulong FileOffset, string LocalPath);

    public string CorePath { get; }
    public Segment[] Segments { get; }
    public FileBacked[] Files { get; }

    public CoreMemoryMap(string corePath, Segment[] segments, FileBacked[] files)
    {
        CorePath = corePath;
        Segments = segments;
        Files = files;
    }

    /// <summary>Reads up to buffer.Length bytes; returns how many contiguous bytes were available from <paramref name="address"/>.</summary>
    public int Read(ulong address, Span<byte> buffer)
    {
        int done = 0;
        SafeFileHandle? core = null;
        try
        {
            while (done < buffer.Length)
            {
                ulong a = address + (ulong)done;
                int n = 0;
                var seg = Find(a);
                if (seg is { } s && a - s.Start < s.BytesInFile)
                {
                    int want = (int)Math.Min((ulong)(buffer.Length - done), s.BytesInFile - (a - s.Start));
                    core ??= File.OpenHandle(CorePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    n = RandomAccess.Read(core, buffer.Slice(done, want), (long)(s.FileOffset + (a - s.Start)));
                }
                else if (FindFile(a) is { } f)
                {
                    int want = (int)Math.Min((ulong)(buffer.Length - done), f.End - a);
                    try
                    {
                        using var h = File.OpenHandle(f.LocalPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                        n = RandomAccess.Read(h, buffer.Slice(done, want), (long)(f.FileOffset + (a - f.Start)));
                    }
                    catch (IOException) { n = 0; }
                    catch (UnauthorizedAccessException) { n = 0; }
                }
                if (n <= 0) break;
                done += n;
            }
        }
        finally
        {
            core?.Dispose();
        }
        return done;
    }

    internal Segment? Find(ulong address)
    {
        int lo = 0, hi = Segments.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var s = Segments[mid];
            if (address < s.Start) hi = mid - 1;
            else if (address >= s.End) lo = mid + 1;
            else return s;
        }
        return null;
    }

    internal FileBacked? FindFile(ulong address)
    {
        foreach (var f in Files)
            if (address >= f.Start && address < f.End) return f;
        return null;
    }
}
