using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// The WriteTracked method: the process makes a userfaultfd (injected) whose asynchronous write-protect
/// mode tracks what it writes; its memory is copied while it runs (see <see cref="WriteTracker"/>), then
/// it is stopped a second time only to take its registers and mappings and re-read what it wrote since.
/// </summary>
internal sealed class WriteTrackedCopy
{
    private const int SYS_close = 3;
    private readonly PtraceSession _session;
    private readonly ILogger _log;
    private readonly int _pid;

    public WriteTrackedCopy(PtraceSession session, int pid, ILogger log)
    {
        _session = session;
        _pid = pid;
        _log = log;
    }

    /// <summary>
    /// Makes the stopped process create a userfaultfd (an injected userfaultfd() call: one belongs to the
    /// address space of its creator), takes a copy of it and closes the process's own. Null, with the reason
    /// logged, when the kernel refuses a step (the caller decides what happens instead); a process that is
    /// gone still throws.
    /// </summary>
    public WriteTracker? StartTracking(SyscallInjector injector, int tid)
    {
        WriteTracker? tracker = null;
        try
        {
            long fd = injector.Call(tid, UserFault.SYS_userfaultfd, [UserFault.CreateFlags]);
            if (fd < 0)
            {
                _log.LogDebug("Cannot track the writes of process {Pid}: userfaultfd() failed ({Errno}).", _pid, Errno.Name((int)-fd));
                return null;
            }
            _log.LogDebug("Process {Pid} created userfaultfd {Fd}.", _pid, fd);
            tracker = WriteTracker.Open(_pid, (int)fd, _log, out string? why);
            if (tracker is null) _log.LogDebug("Cannot track the writes of process {Pid}: {Why}.", _pid, why);
            long r = injector.Call(tid, SYS_close, [(ulong)fd]);
            if (r != 0) _log.LogWarning("Closing the userfaultfd {Fd} in process {Pid} returned {Result}.", fd, _pid, r);
            return tracker;
        }
        catch (LinuxTraceException ex) when (ex is not ProcessNotFoundException)
        {
            tracker?.Dispose();
            _log.LogDebug("Cannot track the writes of process {Pid}: {Message}", _pid, ex.Message);
            return null;
        }
        catch
        {
            tracker?.Dispose();
            throw;
        }
    }

    /// <summary>What the copy made while the process ran, for the final stop to complete.</summary>
    private sealed class Copy
    {
        public required MemoryFile Memory { get; init; }
        public required Dictionary<ulong, long> Anonymous { get; init; }
        public long Reserve { get; init; }
        /// <summary>The end of the data in the file: what maps after the copy goes here.</summary>
        public long End { get; set; }
        public List<Copied> Copies { get; } = new();
        /// <summary>
        /// What was copied with bytes of its own: a page there that is gone or the zero page by the final stop
        /// is read again (as zeros), so the file does not keep the old bytes.
        /// </summary>
        public List<(ulong Start, ulong End)> CopiedBytes { get; set; } = new();
        public long Unreadable { get; set; }
        public int Read(ulong address, Span<byte> buffer) => Memory.Read(address, buffer);
    }

    /// <summary>
    /// The write-tracked snapshot, once the process runs again with its writes tracked: copies its memory
    /// into the file while it runs (and copies again, still running, what it wrote meanwhile, while that
    /// shrinks), then stops it a second time to take the registers and the mappings and to re-read only
    /// what changed since it was copied. Returns the image, the file size, the unreadable bytes and the
    /// second pause.
    /// </summary>
    public (CoreImage Image, long FileSize, long Unreadable, TimeSpan Paused) Save(FileStream output, SnapshotMemory include,
        WriteTracker tracker, Action<long, long>? progress, CancellationToken cancel)
    {
        // Through /proc/PID/mem: process_vm_readv would unshare the pages the process shares with a child it forked.
        using var memory = MemoryFile.Open(_pid);
        var copy = CopyWhileRunning(memory, output, include, tracker, progress, cancel);
        RecopyWritten(copy, output, tracker, cancel);
        copy.CopiedBytes = Merge(copy.CopiedBytes);

        // Stop it; what is read now is what the core holds.
        var pause = Stopwatch.StartNew();
        CoreImage image;
        List<(long Offset, byte[] Bytes)> pending;
        using (CpuPin.ToCpuOf(_pid, _log))
        {
            var stopped = StoppedProcess.Stop(_session, _pid, _log, cancel);
            try
            {
                _log.LogDebug("Stopped {Count} thread(s) of process {Pid} again.", stopped.Threads.Count, _pid);
                (image, pending) = RereadChanged(copy, stopped, include, tracker);
            }
            finally
            {
                stopped.Resume();
            }
        }
        var pausedFor = pause.Elapsed;
        _log.LogInformation("Stopped process {Pid} again for {Ms:F1} ms to read the {Bytes} bytes it wrote (or mapped) since they were copied.",
            _pid, pausedFor.TotalMilliseconds, pending.Sum(p => (long)p.Bytes.Length));
        foreach (var (offset, bytes) in pending)
            RandomAccess.Write(output.SafeFileHandle, bytes, offset);
        long fileSize = CoreWriter.WriteHeaders(output, image, copy.Reserve, copy.End);
        output.Flush(flushToDisk: false);
        return (image, fileSize, copy.Unreadable, pausedFor);
    }

    /// <summary>The first copy of every segment, the process running, its private mappings registered and write-protected.</summary>
    private Copy CopyWhileRunning(MemoryFile memory, FileStream output, SnapshotMemory include, WriteTracker tracker,
        Action<long, long>? progress, CancellationToken cancel)
    {
        var maps = ProcFs.ReadMaps(_pid);
        var anonymous = CoreImageCollector.ReadSmapsAnonymous(_pid);
        var first = new CoreImage { Pid = _pid };
        CoreImageCollector.AddSegments(first, maps, _pid, include, anonymous);
        // Whole private mappings are registered (a part would make the kernel split the mapping); shared memory
        // changes without the process writing it (another process may), so it is copied once, live, as a
        // twin would read it.
        var registered = new List<(ulong Start, ulong End)>();
        foreach (var m in maps.Where(m => m.IsPrivate && first.Segments.Any(s => s.DumpSize > 0 && s.Start >= m.Start && s.Start < m.End)))
            if (tracker.Register(m.Start, m.End)) registered.Add((m.Start, m.End));

        // The header area: generous, so the final program headers and notes (more threads, more mappings by
        // then) fit before the data; they go after it when they do not.
        int threads = ProcFs.ListThreads(_pid).Count;
        long reserve = CoreWriter.Align(64 + 56L * (2 * first.Segments.Count + 64)
            + 2L * (threads * 4096 + first.Segments.Sum(s => (s.Path?.Length ?? 0) + 25) + 8192), CoreWriter.PageSize);
        var copy = new Copy { Memory = memory, Anonymous = anonymous, Reserve = reserve, End = reserve };
        var ranges = new List<(ulong Address, long Offset, ulong Length)>();
        foreach (var s in first.Segments.Where(s => s.DumpSize > 0))
        {
            ulong segmentEnd = s.Start + s.DumpSize;
            bool tracked = s.Private && registered.Any(r => s.Start >= r.Start && s.Start < r.End);
            var c = new Copied(s.Start, segmentEnd, copy.End, tracked, s.Private);
            if (tracked && s.Path is null)
            {
                // Anonymous: only the pages the process has (the rest reads as zeros, a hole in the file), and
                // only those protected, or the kernel would build page tables for every untouched page.
                foreach (var (x, y) in tracker.Populated(s.Start, segmentEnd))
                {
                    if (!tracker.Protect(x, y)) { c = c with { Tracked = false }; break; }
                    ranges.Add((x, c.Offset + (long)(x - s.Start), y - x));
                    copy.CopiedBytes.Add((x, y));
                }
            }
            else
            {
                // File-backed (unpopulated pages are the file's bytes, not zeros) or shared: all of it.
                if (tracked && !tracker.Protect(s.Start, segmentEnd)) c = c with { Tracked = false };
                ranges.Add((s.Start, c.Offset, s.DumpSize));
                copy.CopiedBytes.Add((s.Start, segmentEnd));
            }
            copy.Copies.Add(c);
            copy.End += (long)s.DumpSize;
        }
        copy.Unreadable = CoreWriter.Copy(output, ranges, copy.Read, progress, cancel, sparse: true);
        _log.LogInformation("Copied {Bytes} bytes of memory from the running process {Pid}; {Tracked} of {Count} private segment(s) are write-tracked.",
            ranges.Sum(r => (long)r.Length), _pid, copy.Copies.Count(c => c.Tracked), copy.Copies.Count(c => c.Private));
        return copy;
    }

    /// <summary>Copies again, still running, what was written meanwhile (protecting it again), while that is a lot.</summary>
    private void RecopyWritten(Copy copy, FileStream output, WriteTracker tracker, CancellationToken cancel)
    {
        for (int round = 1; round <= 3; round++)
        {
            var written = new List<(ulong Address, long Offset, ulong Length)>();
            foreach (var c in copy.Copies.Where(c => c.Tracked))
                foreach (var (x, y) in tracker.TakeWritten(c.Start, c.End))
                {
                    written.Add((x, c.Offset + (long)(x - c.Start), y - x));
                    copy.CopiedBytes.Add((x, y));
                }
            long bytes = written.Sum(w => (long)w.Length);
            _log.LogDebug("Round {Round}: the process wrote {Bytes} bytes while it was copied; copying them again.", round, bytes);
            if (bytes == 0) break;
            copy.Unreadable += CoreWriter.Copy(output, written, copy.Read, null, cancel, sparse: false);
            if (bytes < RecopyWhileRunningAbove) break;
        }
    }

    /// <summary>
    /// At the final stop: the registers and mappings as they are now, the segments cut where the copy's
    /// places in the file are, and the bytes to write again (what changed since it was copied, what was
    /// mapped since, untracked private memory).
    /// </summary>
    private (CoreImage Image, List<(long Offset, byte[] Bytes)> Pending) RereadChanged(Copy copy, StoppedProcess stopped,
        SnapshotMemory include, WriteTracker tracker)
    {
        var (image, maps) = CoreImageCollector.Collect(_session, _pid, stopped.Threads);
        _log.LogDebug("Took the registers and {Count} mappings.", maps.Count);
        // smaps walks every page (milliseconds for gigabytes): its earlier answer holds for mappings that were
        // there then; new file mappings are asked of pagemap.
        foreach (var m in maps.Where(m => m.Kind == MappingKind.File && m.IsPrivate && !copy.Anonymous.ContainsKey(m.Start)))
            copy.Anonymous[m.Start] = tracker.HasPrivatePages(m.Start, m.End) ? 1 : 0;
        CoreImageCollector.AddSegments(image, maps, _pid, include, copy.Anonymous);
        var toRead = new List<(ulong Address, long Offset, ulong Length)>();
        var scans = new List<(ulong Start, ulong End, long Offset)>();
        var pieces = new List<CoreImage.Segment>();
        foreach (var s in image.Segments)
            Place(copy, s, pieces, toRead, scans);
        toRead.AddRange(Scan(copy, tracker, scans));
        image.Segments.Clear();
        image.Segments.AddRange(pieces);
        _log.LogDebug("Scanned the tracked memory: {Count} range(s) to read again.", toRead.Count);
        var pending = new List<(long Offset, byte[] Bytes)>();
        foreach (var (address, offset, length) in toRead)
        {
            var bytes = new byte[length];
            copy.Unreadable += CoreWriter.ReadFully(address, bytes, copy.Read);
            pending.Add((offset, bytes));
        }
        return (image, pending);
    }

    /// <summary>Cuts a final segment into pieces that each lie in one copied segment (or in none: mapped since), deciding what to read again.</summary>
    private static void Place(Copy copy, CoreImage.Segment s, List<CoreImage.Segment> pieces,
        List<(ulong Address, long Offset, ulong Length)> toRead, List<(ulong Start, ulong End, long Offset)> scans)
    {
        if (s.DumpSize == 0) { pieces.Add(s); return; }
        ulong a = s.Start, segmentEnd = s.Start + s.DumpSize;
        while (a < segmentEnd)
        {
            int i = copy.Copies.FindIndex(c => a >= c.Start && a < c.End);
            ulong b;
            long offset;
            if (i >= 0)
            {
                var c = copy.Copies[i];
                b = Math.Min(segmentEnd, c.End);
                offset = c.Offset + (long)(a - c.Start);
                if (c.Tracked)
                {
                    // Scanned later, in slices on every CPU: the page-table walk is most of this pause.
                    for (ulong x = a; x < b; x += ScanSlice)
                        scans.Add((x, Math.Min(b, x + ScanSlice), offset + (long)(x - a)));
                }
                else if (c.Private)
                    toRead.Add((a, offset, b - a)); // untracked private memory: read now
            }
            else
            {
                // Mapped since the copy: read now, into a new place at the end of the file.
                b = Math.Min(segmentEnd, copy.Copies.Where(c => c.Start > a).Select(c => c.Start).DefaultIfEmpty(segmentEnd).Min());
                offset = copy.End;
                copy.End += (long)(b - a);
                toRead.Add((a, offset, b - a));
            }
            pieces.Add(new CoreImage.Segment
            {
                Start = a, End = b == segmentEnd ? s.End : b, Flags = s.Flags, DumpSize = b - a, Path = s.Path,
                FileOffset = s.FileOffset + (a - s.Start), Inode = s.Inode, Private = s.Private, CoreOffset = offset,
            });
            a = b;
        }
    }

    /// <summary>The tracked ranges the process may have changed since they were copied, found by scanning in slices on every CPU.</summary>
    private static IEnumerable<(ulong Address, long Offset, ulong Length)> Scan(Copy copy, WriteTracker tracker, List<(ulong Start, ulong End, long Offset)> scans)
    {
        var changed = new System.Collections.Concurrent.ConcurrentBag<(ulong Address, long Offset, ulong Length)>();
        int nextScan = -1;
        using var stopScans = new CancellationTokenSource();
        Workers.Run(Math.Min(scans.Count, Workers.Count(int.MaxValue)), _ =>
        {
            int i;
            while (!stopScans.IsCancellationRequested && (i = Interlocked.Increment(ref nextScan)) < scans.Count)
            {
                var scan = scans[i];
                foreach (var (x, y, state) in tracker.States(scan.Start, scan.End))
                {
                    if (!state.MayHaveChanged) continue;
                    // Bytes of its own: read them. No bytes (gone, or the zero page): zeros, which the file
                    // already has unless bytes were copied there.
                    var runs = state.HasBytes ? [(x, y)] : Intersect(copy.CopiedBytes, x, y);
                    foreach (var (u, v) in runs) changed.Add((u, scan.Offset + (long)(u - scan.Start), v - u));
                }
            }
        }, stopScans);
        return changed;
    }

    /// <summary>A segment copied while the process ran: its place in the file, whether its writes are tracked, whether it is private.</summary>
    private readonly record struct Copied(ulong Start, ulong End, long Offset, bool Tracked, bool Private);

    /// <summary>Sorted, non-overlapping ranges covering the same addresses.</summary>
    private static List<(ulong Start, ulong End)> Merge(List<(ulong Start, ulong End)> ranges)
    {
        var result = new List<(ulong Start, ulong End)>();
        foreach (var r in ranges.OrderBy(r => r.Start))
        {
            if (result.Count > 0 && r.Start <= result[^1].End) result[^1] = (result[^1].Start, Math.Max(result[^1].End, r.End));
            else result.Add(r);
        }
        return result;
    }

    /// <summary>The parts of [start, end) inside <paramref name="merged"/> (sorted, as <see cref="Merge"/> returns).</summary>
    private static List<(ulong Start, ulong End)> Intersect(List<(ulong Start, ulong End)> merged, ulong start, ulong end)
    {
        var result = new List<(ulong Start, ulong End)>();
        int i = merged.BinarySearch((start, start), Comparer<(ulong Start, ulong End)>.Create((p, q) => p.Start.CompareTo(q.Start)));
        for (i = i < 0 ? Math.Max(0, ~i - 1) : i; i < merged.Count && merged[i].Start < end; i++)
        {
            ulong a = Math.Max(start, merged[i].Start), b = Math.Min(end, merged[i].End);
            if (a < b) result.Add((a, b));
        }
        return result;
    }

    /// <summary>While the process writes more than this during a copy, what it wrote is copied again before the final stop.</summary>
    private const long RecopyWhileRunningAbove = 4L << 20;
    /// <summary>Tracked memory is scanned at the final stop in slices of this size, in parallel.</summary>
    private const ulong ScanSlice = 128UL << 20;
}
