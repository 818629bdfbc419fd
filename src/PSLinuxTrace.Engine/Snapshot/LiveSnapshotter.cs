using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Host;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// Writes an ELF core of a running process while stopping it only for a few milliseconds. Every
/// thread is seized and interrupted (PTRACE_SEIZE + PTRACE_INTERRUPT: no signal the target can see);
/// then the memory is read while the target runs, in one of two ways. WriteTracked: the target is
/// made to create a userfaultfd (injected), its private memory is write-protected in asynchronous
/// mode and copied while it runs, and a second stop re-reads only what it wrote meanwhile (see
/// <see cref="WriteTracker"/>). CloneTwin: the target clones a copy-on-write twin through an injected
/// clone() (exit signal 0, so it is never signalled about it), which is read and then killed and,
/// through an injected wait4(), reaped in the target. A target under seccomp gets no injected call
/// and stays stopped while it is read. Signals that arrived during a pause are handed back on detach.
/// Must run on one thread from start to end (ptrace's rule).
/// </summary>
public sealed class LiveSnapshotter
{
    private const int SYS_clone = 56, SYS_wait4 = 61;
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);
    private readonly ILogger _log;

    public LiveSnapshotter(ILogger log) => _log = log;

    private sealed class Seized
    {
        public required int Tid { get; init; }
        public int PendingSignal { get; set; }
        public bool Stopped { get; set; }
        public bool Gone { get; set; }
    }

    public ProcessSnapshot Save(int pid, string path, SnapshotMemory include, Action<long, long>? progress = null, CancellationToken cancel = default,
        SnapshotMethod method = SnapshotMethod.Auto)
    {
        if (pid <= 0 || !ProcFs.Exists(pid)) throw new ProcessNotFoundException(pid);
        if (!TracerHost.RunsInPlace)
            return TracerClient.Run<ProcessSnapshot>(new TracerRequest
            {
                Operation = TracerOperation.LiveSnapshot, Pid = pid, OutputPath = Path.GetFullPath(path), Include = include, Method = method,
            }, _log, progress, cancel);
        // The tracer process itself is the one process it cannot stop; the user's pwsh it can.
        if (pid == Environment.ProcessId) throw new ArgumentException("The tracer process cannot snapshot itself.");
        int tracer = Interop.Ptrace.TracerOf(pid);
        if (tracer > 0) throw new TargetBusyException($"Process {pid} is already traced by process {tracer}; a process can have only one tracer.", tracer);
        var status = Preflight(pid);

        var total = Stopwatch.StartNew();
        var warnings = new List<string>();
        var paused = TimeSpan.Zero;
        var seized = new Dictionary<int, Seized>();
        int twin = 0, unusedTwin = 0;
        string used;
        CoreImage image;
        FileStream? output = null;
        CpuPin? pin = null;
        WriteTracker? tracker = null;
        bool complete = false;
        var chosen = method;
        if (method == SnapshotMethod.Auto)
        {
            long anonymousKb = AnonymousResidentKb(status);
            chosen = ChooseAuto(anonymousKb);
            _log.LogDebug("Process {Pid} has {Mib} MiB of anonymous memory resident: {Method}.", pid, anonymousKb / 1024, chosen);
        }
        bool trackable = chosen != SnapshotMethod.CloneTwin && WriteTracker.IsSupported && !UsesUserfaultfd(pid);
        // Only a caller who asked for write tracking is told it was not used (Auto falls back silently, as documented).
        if (method == SnapshotMethod.WriteTracked && !trackable)
        {
            warnings.Add(WriteTracker.IsSupported
                ? $"Process {pid} has a userfaultfd of its own, which write tracking could get in the way of; a copy-on-write twin is used instead."
                : "This kernel cannot track writes (asynchronous write-protect userfaultfd and PAGEMAP_SCAN need Linux 6.7); a copy-on-write twin is used instead.");
            _log.LogWarning("{Message}", warnings[^1]);
        }
        ProcessSnapshot Done(CoreImage image, long fileSize, long unreadable)
        {
            complete = true;
            long memory = image.Segments.Sum(s => (long)s.DumpSize);
            _log.LogInformation("Wrote {Path}: {Bytes} bytes of memory in {Segments} segments; the target was paused {Paused} ms.",
                path, memory, image.Segments.Count, paused.TotalMilliseconds);
            return new ProcessSnapshot(Path.GetFullPath(path), pid, image.Threads.Count, image.Segments.Count, fileSize, memory,
                paused, total.Elapsed, used, warnings.ToArray()) { UnreadableBytes = unreadable };
        }
        try
        {
            output = CoreWriter.CreateFile(path);
            pin = CpuPin.ToCpuOf(pid, _log);
            var pause = Stopwatch.StartNew();
            SeizeAll(pid, seized, cancel);
            _log.LogInformation("Stopped {Count} thread(s) of process {Pid}.", seized.Count, pid);
            int injector = seized.ContainsKey(pid) && !seized[pid].Gone ? pid : seized.Values.First(s => !s.Gone).Tid;
            string? risk = InjectionRisk(pid, injector);
            if (risk is null && trackable) tracker = StartTracking(pid, injector);
            ProcessSnapshot SaveWithTracker(WriteTracker tracking)
            {
                // Copy while it runs, tracking what it writes; then stop it again only to re-read that.
                DetachAll(seized, pid);
                paused += pause.Elapsed;
                pin!.Dispose();
                used = nameof(SnapshotMethod.WriteTracked);
                var (tracked, size, missing, pausedAgain) = SaveTracked(pid, output!, include, tracking, seized, progress, cancel);
                paused += pausedAgain;
                output!.Dispose();
                output = null;
                // Unregistering walks every tracked page (see WriteTracker): part of the snapshot's Duration.
                tracking.Dispose();
                tracker = null;
                return Done(tracked, size, missing);
            }
            if (tracker is not null) return SaveWithTracker(tracker);
            image = Collect(pid, seized.Values.Where(s => !s.Gone).Select(s => s.Tid).ToList(), include);
            if (risk is not null)
            {
                warnings.Add(risk);
                _log.LogWarning("{Message}", risk);
            }
            else try
            {
                // The twin's pid is kept the moment the kernel reports it, so that a target killed before
                // the injected call returns still leaves a twin the finally block below kills and reaps.
                twin = InjectClone(pid, injector, t => twin = t);
                _log.LogInformation("Process {Pid} cloned a copy-on-write twin {Twin}; memory is read from the twin.", pid, twin);
            }
            catch (LinuxTraceException ex) when (ex is not ProcessNotFoundException)
            {
                // A twin reported before the failure is not used; the finally block kills and reaps it.
                unusedTwin = twin;
                twin = 0;
                // Auto chose the twin, but the process cannot fork (a pids limit, RLIMIT_NPROC): track its writes instead
                // (when Auto chose tracking, it was tried first and failed).
                if (method == SnapshotMethod.Auto && chosen == SnapshotMethod.CloneTwin && WriteTracker.IsSupported && !UsesUserfaultfd(pid)
                    && (tracker = StartTracking(pid, injector)) is not null)
                {
                    _log.LogInformation("Process {Pid} could not clone a twin ({Message}); its writes are tracked instead.", pid, ex.Message);
                    return SaveWithTracker(tracker);
                }
                warnings.Add($"Could not make the target clone a twin ({ex.Message}); the target stays stopped while its memory is read.");
                _log.LogWarning("{Message}", warnings[^1]);
            }
            used = twin > 0 ? nameof(SnapshotMethod.CloneTwin) : "Stopped";
            var maps = Maps;
            if (twin > 0)
            {
                DetachAll(seized, pid);
                paused += pause.Elapsed;
            }
            pin.Dispose(); // reading and writing use every CPU (the copy's threads would inherit a pinned mask)

            int source = twin > 0 ? twin : pid;
            AddSegments(image, maps, source, include);
            // Through /proc/PID/mem: read with process_vm_readv, the twin would copy every page it shares with the target.
            using var sourceMemory = MemoryFile.Open(source);
            // Opened only when needed: once the twin is made, a target that exits still leaves a whole core.
            var targetMemory = new Lazy<MemoryFile>(() => MemoryFile.Open(pid), LazyThreadSafetyMode.ExecutionAndPublication);
            int Read(ulong address, Span<byte> buffer)
            {
                int n = sourceMemory.Read(address, buffer);
                // Regions the twin lacks (MADV_DONTFORK) come from the target itself.
                if (n == 0 && source != pid) n = targetMemory.Value.Read(address, buffer);
                return n;
            }
            // Once every byte is read, the twin can go while the file is still being written.
            long fileSize, unreadable;
            try
            {
                (fileSize, unreadable) = CoreWriter.Write(output, image, Read, progress, cancel, () =>
                {
                    if (twin > 0) LibC.kill(twin, LibC.SIGKILL);
                });
            }
            finally
            {
                if (targetMemory.IsValueCreated) targetMemory.Value.Dispose();
            }
            if (unreadable > 0) _log.LogInformation("{Bytes} bytes could not be read (guard pages) and were written as zeros.", unreadable);
            if (twin == 0)
            {
                DetachAll(seized, pid);
                paused += pause.Elapsed;
            }
            output.Dispose();
            output = null;
            if (twin > 0)
            {
                paused += KillAndReapTwin(pid, twin);
                twin = 0;
            }
            return Done(image, fileSize, unreadable);
        }
        catch (ProcessNotFoundException ex) when (ex.ProcessId != pid && IsExiting(pid, pid))
        {
            // A thread or the twin vanished because the whole target was killed: say so of the target.
            throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.", ex);
        }
        finally
        {
            pin?.Dispose();
            output?.Dispose();
            // Whatever happened: the target runs on, untraced, its writes no longer tracked; the twin is gone and reaped.
            DetachAll(seized, pid);
            tracker?.Dispose();
            if (twin > 0) paused += KillAndReapTwin(pid, twin);
            if (unusedTwin > 0) paused += KillAndReapTwin(pid, unusedTwin);
            if (!complete)
            {
                try { File.Delete(path); }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        }
    }

    /// <summary>
    /// Anonymous memory above which Auto tracks writes rather than making a twin: the twin's fork copies the page
    /// tables while the process is stopped, about 9 ms per GiB here (18 ms of a 27 ms pause at 2 GiB), so past
    /// 4 GiB it alone would near the 50 ms a pause should stay under. Up to it, the twin is faster and gentler
    /// (bench/snapshot: 116-123 against 139-198 ms at 512 MiB, 0.42-0.55 against 0.71-0.80 s at 2 GiB, and the process's
    /// own longest delay 78-102 against 219-244 ms), and needs no userfaultfd.
    /// </summary>
    internal const long AutoTwinLimitKb = 4L << 20;

    /// <summary>What Auto means for a process with <paramref name="anonymousKb"/> of anonymous memory resident.</summary>
    internal static SnapshotMethod ChooseAuto(long anonymousKb) =>
        anonymousKb > AutoTwinLimitKb ? SnapshotMethod.WriteTracked : SnapshotMethod.CloneTwin;

    /// <summary>RssAnon ("123 kB") of /proc/PID/status, in kB: the private memory a fork's page-table copy scales with; 0 when unknown.</summary>
    private static long AnonymousResidentKb(ProcessStatus? status) =>
        status is not null && status.Fields.TryGetValue("RssAnon", out var value) &&
        long.TryParse(value.Split(' ')[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long kb)
            ? kb : 0;

    /// <summary>
    /// Refuses, before any file is created, what ptrace would refuse with a bare EPERM that reads like
    /// a missing capability: a process that has already exited (a zombie: nothing left to dump) and a
    /// kernel thread (no user memory). Returns the status it read (null when unreadable: ptrace will say why).
    /// </summary>
    private static ProcessStatus? Preflight(int pid)
    {
        ProcessStatus status;
        try { status = ProcFs.ReadStatus(pid); }
        catch (ProcessNotFoundException) { throw; }
        catch (LinuxTraceException) { return null; }
        if (status.Fields.TryGetValue("Kthread", out var kthread) && kthread == "1")
            throw new UnsupportedFeatureException("Snapshotting a kernel thread", null, $"process {pid} is a kernel thread: it has no user memory and cannot be traced.", byKernel: false);
        bool zombie = status.State is 'Z' or 'X';
        int threads = status.Threads > 0 ? status.Threads : 1;
        if (zombie && threads <= 1)
            throw new ProcessNotFoundException(pid, $"Process {pid} has exited (it is a zombie waiting for its parent); it has no memory left to snapshot.");
        // A leader that called pthread_exit is a zombie too while its other threads run on; ptrace cannot
        // stop an exited thread, and /proc/PID shows no memory through it.
        // A killed process also shows a zombie leader for a moment while its other threads die.
        if (zombie && Within(TimeSpan.FromMilliseconds(500), () => IsDead(pid)))
            throw new ProcessNotFoundException(pid, $"Process {pid} has exited; it has no memory left to snapshot.");
        if (zombie)
            throw new UnsupportedFeatureException("Snapshotting a process whose main thread has exited", null,
                $"the main thread of process {pid} has exited while its other {threads - 1} thread(s) run on; ptrace cannot stop an exited thread.", byKernel: false);
        return status;
    }

    /// <summary>
    /// Why no system call may be injected into <paramref name="tid"/>, or null: under seccomp (strict mode,
    /// or a filter such as systemd's SystemCallFilter= or a container's profile) the kernel checks injected
    /// calls like the thread's own, and a filter may answer clone() or wait4() by killing the process.
    /// </summary>
    private static string? InjectionRisk(int pid, int tid)
    {
        string mode;
        try { mode = ProcessStatus.Parse(tid, ProcFs.ReadText(pid, $"task/{tid}/status")).Fields.GetValueOrDefault("Seccomp", "0"); }
        catch (LinuxTraceException) { return null; }
        if (mode == "0") return null;
        string what = mode == "1" ? "seccomp strict mode" : "a seccomp filter";
        return $"Process {pid} runs under {what}, which could refuse an injected system call or kill the process for it; " +
            "so nothing is injected and the process stays stopped while its memory is read (PausedFor covers the whole read).";
    }

    /// <summary>Whether the process holds a userfaultfd of its own (then its memory is not tracked: a twin is made instead).</summary>
    private static bool UsesUserfaultfd(int pid)
    {
        try
        {
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                if (new FileInfo(fd).LinkTarget == "anon_inode:[userfaultfd]") return true;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return false;
    }

    /// <summary>
    /// Makes the stopped process create a userfaultfd (an injected userfaultfd() call: one belongs to the
    /// address space of its creator), takes a copy of it and closes the process's own. Null, with the reason
    /// logged, when the kernel refuses a step (the caller decides what happens instead); a process that is
    /// gone still throws.
    /// </summary>
    private WriteTracker? StartTracking(int pid, int tid)
    {
        WriteTracker? tracker = null;
        try
        {
            long fd = InjectSyscall(pid, tid, UserFault.SYS_userfaultfd, UserFault.CreateFlags, 0, 0, 0, 0);
            if (fd < 0)
            {
                _log.LogDebug("Cannot track the writes of process {Pid}: userfaultfd() failed ({Errno}).", pid, Errno.Name((int)-fd));
                return null;
            }
            _log.LogDebug("Process {Pid} created userfaultfd {Fd}.", pid, fd);
            tracker = WriteTracker.Open(pid, (int)fd, _log, out string? why);
            if (tracker is null) _log.LogDebug("Cannot track the writes of process {Pid}: {Why}.", pid, why);
            long r = InjectSyscall(pid, tid, SYS_close, (ulong)fd, 0, 0, 0, 0);
            if (r != 0) _log.LogWarning("Closing the userfaultfd {Fd} in process {Pid} returned {Result}.", fd, pid, r);
            return tracker;
        }
        catch (LinuxTraceException ex) when (ex is not ProcessNotFoundException)
        {
            tracker?.Dispose();
            _log.LogDebug("Cannot track the writes of process {Pid}: {Message}", pid, ex.Message);
            return null;
        }
        catch
        {
            tracker?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The write-tracked snapshot, once the process runs again with its writes tracked: copies its memory
    /// into the file while it runs (and copies again, still running, what it wrote meanwhile, while that
    /// shrinks), then stops it a second time to take the registers and the mappings and to re-read only
    /// what changed since it was copied. Returns the image, the file size, the unreadable bytes and the
    /// second pause.
    /// </summary>
    private (CoreImage Image, long FileSize, long Unreadable, TimeSpan Paused) SaveTracked(int pid, FileStream output, SnapshotMemory include,
        WriteTracker tracker, Dictionary<int, Seized> seized, Action<long, long>? progress, CancellationToken cancel)
    {
        // Through /proc/PID/mem: process_vm_readv would unshare the pages the process shares with a child it forked.
        using var memory = MemoryFile.Open(pid);
        int Read(ulong address, Span<byte> buffer) => memory.Read(address, buffer);
        var maps = ProcFs.ReadMaps(pid);
        var anonymous = ReadSmapsAnonymous(pid);
        var first = new CoreImage { Pid = pid };
        AddSegments(first, maps, pid, include, anonymous);
        // Whole private mappings are registered (a part would make the kernel split the mapping); shared memory
        // changes without the process writing it (another process may), so it is copied once, live, as a
        // twin would read it.
        var registered = new List<(ulong Start, ulong End)>();
        foreach (var m in maps.Where(m => m.IsPrivate && first.Segments.Any(s => s.DumpSize > 0 && s.Start >= m.Start && s.Start < m.End)))
            if (tracker.Register(m.Start, m.End)) registered.Add((m.Start, m.End));

        // The header area: generous, so the final program headers and notes (more threads, more mappings by
        // then) fit before the data; they go after it when they do not.
        int threads = ProcFs.ListThreads(pid).Count;
        long reserve = CoreWriter.Align(64 + 56L * (2 * first.Segments.Count + 64)
            + 2L * (threads * 4096 + first.Segments.Sum(s => (s.Path?.Length ?? 0) + 25) + 8192), CoreWriter.PageSize);
        var copies = new List<Copied>();
        // What was copied with bytes of its own: a page there that is gone or the zero page by the final stop
        // is read again (as zeros), so the file does not keep the old bytes.
        var copiedBytes = new List<(ulong Start, ulong End)>();
        var ranges = new List<(ulong Address, long Offset, ulong Length)>();
        long end = reserve;
        foreach (var s in first.Segments.Where(s => s.DumpSize > 0))
        {
            ulong segmentEnd = s.Start + s.DumpSize;
            bool tracked = s.Private && registered.Any(r => s.Start >= r.Start && s.Start < r.End);
            var c = new Copied(s.Start, segmentEnd, end, tracked, s.Private);
            if (tracked && s.Path is null)
            {
                // Anonymous: only the pages the process has (the rest reads as zeros, a hole in the file), and
                // only those protected, or the kernel would build page tables for every untouched page.
                foreach (var (x, y) in tracker.Populated(s.Start, segmentEnd))
                {
                    if (!tracker.Protect(x, y)) { c = c with { Tracked = false }; break; }
                    ranges.Add((x, c.Offset + (long)(x - s.Start), y - x));
                    copiedBytes.Add((x, y));
                }
            }
            else
            {
                // File-backed (unpopulated pages are the file's bytes, not zeros) or shared: all of it.
                if (tracked && !tracker.Protect(s.Start, segmentEnd)) c = c with { Tracked = false };
                ranges.Add((s.Start, c.Offset, s.DumpSize));
                copiedBytes.Add((s.Start, segmentEnd));
            }
            copies.Add(c);
            end += (long)s.DumpSize;
        }
        long unreadable = CoreWriter.Copy(output, ranges, Read, progress, cancel, sparse: true);
        _log.LogInformation("Copied {Bytes} bytes of memory from the running process {Pid}; {Tracked} of {Count} private segment(s) are write-tracked.",
            ranges.Sum(r => (long)r.Length), pid, copies.Count(c => c.Tracked), copies.Count(c => c.Private));

        // Copy again, still running, what was written meanwhile (protecting it again), while that is a lot.
        for (int round = 1; round <= 3; round++)
        {
            var written = new List<(ulong Address, long Offset, ulong Length)>();
            foreach (var c in copies.Where(c => c.Tracked))
                foreach (var (x, y) in tracker.TakeWritten(c.Start, c.End))
                {
                    written.Add((x, c.Offset + (long)(x - c.Start), y - x));
                    copiedBytes.Add((x, y));
                }
            long bytes = written.Sum(w => (long)w.Length);
            _log.LogDebug("Round {Round}: the process wrote {Bytes} bytes while it was copied; copying them again.", round, bytes);
            if (bytes == 0) break;
            unreadable += CoreWriter.Copy(output, written, Read, null, cancel, sparse: false);
            if (bytes < RecopyWhileRunningAbove) break;
        }
        copiedBytes = Merge(copiedBytes);

        // Stop it; what is read now is what the core holds.
        var pause = Stopwatch.StartNew();
        var pending = new List<(long Offset, byte[] Bytes)>();
        CoreImage image;
        using (CpuPin.ToCpuOf(pid, _log))
        {
            seized.Clear();
            SeizeAll(pid, seized, cancel);
            _log.LogDebug("Stopped {Count} thread(s) of process {Pid} again.", seized.Count, pid);
            image = Collect(pid, seized.Values.Where(s => !s.Gone).Select(s => s.Tid).ToList(), include);
            _log.LogDebug("Took the registers and {Count} mappings.", Maps.Count);
            // smaps walks every page (milliseconds for gigabytes): its earlier answer holds for mappings that were
            // there then; new file mappings are asked of pagemap.
            foreach (var m in Maps.Where(m => m.Kind == MappingKind.File && m.IsPrivate && !anonymous.ContainsKey(m.Start)))
                anonymous[m.Start] = tracker.HasPrivatePages(m.Start, m.End) ? 1 : 0;
            AddSegments(image, Maps, pid, include, anonymous);
            var toRead = new List<(ulong Address, long Offset, ulong Length)>();
            var scans = new List<(ulong Start, ulong End, long Offset)>();
            var pieces = new List<CoreImage.Segment>();
            foreach (var s in image.Segments)
            {
                if (s.DumpSize == 0) { pieces.Add(s); continue; }
                ulong a = s.Start, segmentEnd = s.Start + s.DumpSize;
                while (a < segmentEnd)
                {
                    int i = copies.FindIndex(c => a >= c.Start && a < c.End);
                    ulong b;
                    long offset;
                    if (i >= 0)
                    {
                        var c = copies[i];
                        b = Math.Min(segmentEnd, c.End);
                        offset = c.Offset + (long)(a - c.Start);
                        if (c.Tracked)
                        {
                            // Scanned below, in slices on every CPU: the page-table walk is most of this pause.
                            for (ulong x = a; x < b; x += ScanSlice)
                                scans.Add((x, Math.Min(b, x + ScanSlice), offset + (long)(x - a)));
                        }
                        else if (c.Private)
                            toRead.Add((a, offset, b - a)); // untracked private memory: read now
                    }
                    else
                    {
                        // Mapped since the copy: read now, into a new place at the end of the file.
                        b = Math.Min(segmentEnd, copies.Where(c => c.Start > a).Select(c => c.Start).DefaultIfEmpty(segmentEnd).Min());
                        offset = end;
                        end += (long)(b - a);
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
                        var runs = state.HasBytes ? [(x, y)] : Intersect(copiedBytes, x, y);
                        foreach (var (u, v) in runs) changed.Add((u, scan.Offset + (long)(u - scan.Start), v - u));
                    }
                }
            }, stopScans);
            toRead.AddRange(changed);
            image.Segments.Clear();
            image.Segments.AddRange(pieces);
            _log.LogDebug("Scanned the tracked memory: {Count} range(s) to read again.", toRead.Count);
            foreach (var (address, offset, length) in toRead)
            {
                var bytes = new byte[length];
                unreadable += CoreWriter.ReadFully(address, bytes, Read);
                pending.Add((offset, bytes));
            }
            DetachAll(seized, pid);
        }
        var pausedFor = pause.Elapsed;
        _log.LogInformation("Stopped process {Pid} again for {Ms:F1} ms to read the {Bytes} bytes it wrote (or mapped) since they were copied.",
            pid, pausedFor.TotalMilliseconds, pending.Sum(p => (long)p.Bytes.Length));
        foreach (var (offset, bytes) in pending)
            RandomAccess.Write(output.SafeFileHandle, bytes, offset);
        long fileSize = CoreWriter.WriteHeaders(output, image, reserve, end);
        output.Flush(flushToDisk: false);
        return (image, fileSize, unreadable, pausedFor);
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
    private const int SYS_close = 3;

    /// <summary>Seizes and interrupts every thread, until no new thread appears.</summary>
    private void SeizeAll(int pid, Dictionary<int, Seized> seized, CancellationToken cancel)
    {
        for (int round = 0; round < 100; round++)
        {
            bool added = false;
            foreach (int tid in ProcFs.ListThreads(pid))
            {
                if (seized.ContainsKey(tid)) continue;
                try
                {
                    Interop.Ptrace.Seize(tid, LibC.PTRACE_O_TRACECLONE);
                }
                catch (ProcessNotFoundException) when (tid != pid)
                {
                    continue; // the thread exited meanwhile
                }
                catch (TargetPermissionDeniedException ex) when (IsExiting(pid, tid))
                {
                    // ptrace refuses an exiting thread with EPERM, which is not a permission problem.
                    if (tid != pid) continue;
                    throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.", ex);
                }
                seized[tid] = new Seized { Tid = tid };
                added = true;
            }
            foreach (var s in seized.Values.Where(s => !s.Stopped && !s.Gone))
            {
                try { Interop.Ptrace.Interrupt(s.Tid); }
                catch (ProcessNotFoundException) { s.Gone = true; }
            }
            foreach (var s in seized.Values.Where(s => !s.Stopped && !s.Gone).ToList())
                WaitStopped(pid, s, seized, cancel);
            if (!added) return;
        }
    }

    private void WaitStopped(int pid, Seized s, Dictionary<int, Seized> seized, CancellationToken cancel)
    {
        while (true)
        {
            int? status = Interop.Ptrace.Wait(s.Tid, StopTimeout, cancel);
            if (status is null)
            {
                // A waiter in our own process (the runtime's SIGCHLD handling, when the target is our
                // child) may have taken the notification; the thread is in a ptrace stop all the same.
                char state = Interop.Ptrace.ThreadState(pid, s.Tid);
                if (state == 't') { s.Stopped = true; return; }
                if (state is 'Z' or 'X' or '\0')
                {
                    // Killed while we waited: a dead leader reports only after its other threads, which
                    // wait for us to reap them (done on detach), so this is an exit, not a busy thread.
                    s.Gone = true;
                    if (s.Tid == pid) throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.");
                    return;
                }
                cancel.ThrowIfCancellationRequested();
                throw new TargetBusyException($"Thread {s.Tid} of process {pid} did not stop within {StopTimeout.TotalSeconds} s.");
            }
            int st = status.Value;
            if (LibC.WIFEXITED(st) || LibC.WIFSIGNALED(st))
            {
                s.Gone = true;
                if (s.Tid == pid) throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.");
                return;
            }
            if (!LibC.WIFSTOPPED(st)) continue;
            int sig = LibC.WSTOPSIG(st), ev = LibC.PtraceEvent(st);
            if (ev == LibC.PTRACE_EVENT_STOP) { s.Stopped = true; return; }
            if (ev == LibC.PTRACE_EVENT_CLONE)
            {
                // A new thread: auto-attached; it reports its own stop.
                int child = (int)Interop.Ptrace.GetEventMsg(s.Tid);
                if (!seized.ContainsKey(child)) seized[child] = new Seized { Tid = child };
                s.Stopped = true;
                return;
            }
            if (ev == 0)
            {
                // A signal arrived before our interrupt: keep it for the detach (nothing is lost), and
                // stop for real at the interrupt that follows.
                s.PendingSignal = sig;
                s.Stopped = true;
                return;
            }
            s.Stopped = true;
            return;
        }
    }

    private void DetachAll(Dictionary<int, Seized> seized, int pid)
    {
        // The leader last: a killed leader reports its exit only once its other (traced) threads are reaped.
        foreach (var s in seized.Values.OrderBy(s => s.Tid == pid ? 1 : 0).ToList())
        {
            if (s.Gone) continue;
            try
            {
                if (!Interop.Ptrace.Detach(s.Tid, s.PendingSignal)) Settle(s);
            }
            catch (LinuxTraceException ex)
            {
                _log.LogWarning("Detaching thread {Tid} failed: {Message}", s.Tid, ex.Message);
            }
            s.Gone = true;
        }
    }

    /// <summary>
    /// A thread PTRACE_DETACH refused with ESRCH: either not in a stop (seized, not yet interrupted,
    /// when an error cut the snapshot short): stop it and detach; or dead: collect its exit, so no
    /// traced zombie thread keeps its process from being reaped while we live.
    /// </summary>
    private static void Settle(Seized s)
    {
        try { Interop.Ptrace.Interrupt(s.Tid); }
        catch (LinuxTraceException) { }
        try
        {
            int? status = Interop.Ptrace.Wait(s.Tid, TimeSpan.FromSeconds(2));
            if (status is int st && LibC.WIFSTOPPED(st)) Interop.Ptrace.Detach(s.Tid, s.PendingSignal);
        }
        catch (ProcessNotFoundException) { }
    }

    /// <summary>Polls <paramref name="condition"/> every 10 ms until it holds (true) or <paramref name="timeout"/> passes (false).</summary>
    private static bool Within(TimeSpan timeout, Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline) return false;
            Thread.Sleep(10);
        }
        return true;
    }

    /// <summary>Whether a thread has exited: a zombie, dead, or gone from /proc.</summary>
    private static bool HasExited(int pid, int tid) => Interop.Ptrace.ThreadState(pid, tid) is 'Z' or 'X' or '\0';

    /// <summary>Whether every thread of the process has exited (or the process is gone).</summary>
    private static bool IsDead(int pid)
    {
        try { return ProcFs.ListThreads(pid).All(t => HasExited(pid, t)); }
        catch (ProcessNotFoundException) { return true; }
    }

    /// <summary>Whether a thread is dying or dead (polls briefly: a SIGKILLed thread is still 'R' for a moment).</summary>
    private static bool IsExiting(int pid, int tid) =>
        Within(TimeSpan.FromMilliseconds(500), () => HasExited(pid, tid) || !ProcFs.Exists(pid));

    private CoreImage Collect(int pid, List<int> tids, SnapshotMemory include)
    {
        var image = new CoreImage { Pid = pid };
        var status = ProcFs.ReadStatus(pid);
        image.ParentPid = status.ParentPid;
        image.Uid = status.RealUid;
        image.Gid = status.RealGid;
        image.State = status.State;
        image.Comm = ProcFs.ReadComm(pid);
        image.Arguments = string.Join(' ', ProcFs.ReadCommandLine(pid));
        var fields = ProcFs.ReadStatFields(pid);
        image.ProcessGroup = int.Parse(fields[2]);
        image.Session = int.Parse(fields[3]);
        image.Nice = int.Parse(fields[16]);
        image.Flags = ulong.Parse(fields[6]);
        image.Auxv = ProcFs.ReadBytes(pid, "auxv");
        // The thread-group leader first, as the kernel writes it.
        foreach (int tid in tids.OrderBy(t => t == pid ? 0 : 1).ThenBy(t => t))
        {
            image.Threads.Add(new CoreImage.Thread
            {
                Tid = tid,
                Registers = Interop.Ptrace.GetRegs(tid),
                FpRegs = Interop.Ptrace.GetFpRegs(tid),
                XState = Interop.Ptrace.GetRegSet(tid, LibC.NT_X86_XSTATE),
            });
        }
        Maps = ProcFs.ReadMaps(pid);
        return image;
    }

    /// <summary>The target's mappings, read while it was stopped.</summary>
    private List<MemoryMapping> Maps { get; set; } = new();

    /// <summary>
    /// Decides what memory goes in, as the kernel's coredump_filter does: anonymous memory, private
    /// file mappings the process has written to (smaps "Anonymous" &gt; 0: .data, RELRO, .dynamic
    /// with DT_DEBUG, which debuggers need to find the shared libraries), the first page of each ELF
    /// file. Reads smaps of <paramref name="source"/> (the frozen twin), so it costs the target no pause.
    /// </summary>
    internal static void AddSegments(CoreImage image, List<MemoryMapping> maps, int source, SnapshotMemory include,
        Dictionary<ulong, long>? anonymous = null)
    {
        anonymous ??= ReadSmapsAnonymous(source);
        foreach (var m in maps)
        {
            if (m.Kind == MappingKind.Vvar || m.Kind == MappingKind.Vsyscall) continue; // not readable memory
            uint flags = (m.IsReadable ? 4u : 0) | (m.IsWritable ? 2u : 0) | (m.IsExecutable ? 1u : 0);
            bool file = m.Kind == MappingKind.File;
            bool shared = !m.IsPrivate;
            bool written = anonymous.TryGetValue(m.Start, out long kb) && kb > 0;
            bool dump = (file, shared) switch
            {
                (false, false) => include.HasFlag(SnapshotMemory.AnonymousPrivate) || m.Kind == MappingKind.Vdso,
                (false, true) => include.HasFlag(SnapshotMemory.AnonymousShared),
                (true, false) => include.HasFlag(SnapshotMemory.FilePrivate) || ((written || m.IsWritable) && include.HasFlag(SnapshotMemory.AnonymousPrivate)),
                (true, true) => include.HasFlag(SnapshotMemory.FileShared),
            };
            ulong size = m.End - m.Start;
            ulong dumpSize = !m.IsReadable ? 0 : dump ? size : file && m.Offset == 0 && include.HasFlag(SnapshotMemory.ElfHeaders) && IsElf(source, m.Start) ? Math.Min(size, 4096) : 0;
            string? path = file ? m.Path : null;
            // filesz < memsz would mean "zeros" to readers, so the ELF header page gets a segment of its own.
            if (dumpSize > 0 && dumpSize < size)
            {
                image.Segments.Add(new CoreImage.Segment { Start = m.Start, End = m.Start + dumpSize, Flags = flags, DumpSize = dumpSize, Path = path, FileOffset = m.Offset, Inode = m.Inode, Private = m.IsPrivate });
                image.Segments.Add(new CoreImage.Segment { Start = m.Start + dumpSize, End = m.End, Flags = flags, DumpSize = 0, Path = path, FileOffset = m.Offset + dumpSize, Inode = m.Inode, Private = m.IsPrivate });
            }
            else
            {
                image.Segments.Add(new CoreImage.Segment { Start = m.Start, End = m.End, Flags = flags, DumpSize = dumpSize, Path = path, FileOffset = m.Offset, Inode = m.Inode, Private = m.IsPrivate });
            }
        }
    }

    /// <summary>Mapping start → "Anonymous:" kB from /proc/PID/smaps.</summary>
    private static Dictionary<ulong, long> ReadSmapsAnonymous(int pid)
    {
        var result = new Dictionary<ulong, long>();
        ulong current = 0;
        foreach (var line in ProcFs.ReadText(pid, "smaps").AsSpan().EnumerateLines())
        {
            if (line.Length > 0 && char.IsAsciiHexDigit(line[0]) && line.IndexOf('-') is > 0 and var dash && dash < 17)
            {
                current = ulong.Parse(line[..dash], System.Globalization.NumberStyles.HexNumber);
                continue;
            }
            if (line.StartsWith("Anonymous:", StringComparison.Ordinal))
            {
                var v = line[10..].Trim();
                int sp = v.IndexOf(' ');
                result[current] = long.Parse(sp > 0 ? v[..sp] : v);
            }
        }
        return result;
    }

    private static bool IsElf(int pid, ulong address)
    {
        Span<byte> magic = stackalloc byte[4];
        return RemoteMemory.Read(pid, address, magic) == 4 && Elf.ElfFile.HasElfMagic(magic);
    }

    /// <summary>Finds a `syscall` instruction (0f 05) in the target's vDSO or C library text.</summary>
    private static ulong FindSyscallInstruction(int pid)
    {
        foreach (var m in ProcFs.ReadMaps(pid).OrderBy(m => m.Kind == MappingKind.Vdso ? 0 : 1))
        {
            if (!m.IsExecutable || !m.IsReadable || (m.Kind != MappingKind.Vdso && (m.Path is null || !m.Path.Contains("libc", StringComparison.Ordinal)))) continue;
            var bytes = new byte[Math.Min(m.End - m.Start, 4UL << 20)];
            int n = RemoteMemory.Read(pid, m.Start, bytes);
            for (int i = 0; i + 1 < n; i++)
                if (bytes[i] == 0x0f && bytes[i + 1] == 0x05) return m.Start + (ulong)i;
        }
        // A process killed meanwhile shows no mappings any more.
        if (IsExiting(pid, pid)) throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.");
        throw new UnsupportedFeatureException("Injecting a system call", null, $"no syscall instruction found in process {pid}'s vDSO or C library", byKernel: false);
    }

    /// <summary>Runs one system call in a stopped thread and restores it; returns the call's result.</summary>
    private static long InjectSyscall(int pid, int tid, int number, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, Action<int>? onEvent = null)
    {
        ulong at = FindSyscallInstruction(pid);
        var saved = Interop.Ptrace.GetRegs(tid);
        var regs = saved;
        regs.rax = (ulong)number;
        regs.orig_rax = ulong.MaxValue; // -1: no syscall restart on resume
        regs.rdi = a0; regs.rsi = a1; regs.rdx = a2; regs.r10 = a3; regs.r8 = a4; regs.r9 = 0;
        regs.rip = at;
        Interop.Ptrace.SetRegs(tid, regs);
        try
        {
            Interop.Ptrace.SingleStep(tid);
            for (int guard = 0; guard < 16; guard++)
            {
                int status = WaitInjected(pid, tid);
                if (LibC.WIFEXITED(status) || LibC.WIFSIGNALED(status)) throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.");
                int ev = LibC.PtraceEvent(status), sig = LibC.WSTOPSIG(status);
                if (ev != 0)
                {
                    onEvent?.Invoke(ev);
                    Interop.Ptrace.SingleStep(tid);
                    continue;
                }
                if (sig == LibC.SIGTRAP)
                {
                    var after = Interop.Ptrace.GetRegs(tid);
                    if (after.rip == at + 2) return (long)after.rax;
                }
                // Any other signal: it stays pending for the target (re-delivered after detach), step on.
                Interop.Ptrace.SingleStep(tid);
            }
            throw new TargetBusyException($"Thread {tid} did not return from the injected system call.");
        }
        finally
        {
            // A thread killed meanwhile has no registers left to restore (and must not mask why it failed).
            try { Interop.Ptrace.SetRegs(tid, saved); }
            catch (ProcessNotFoundException) { }
        }
    }

    /// <summary>
    /// Waits for the thread running an injected call to stop, in short slices: a killed thread of a
    /// multi-threaded target reports nothing while its siblings wait for us to reap them, so a dead
    /// thread is seen in /proc and reported as the target's exit, not waited on until a timeout.
    /// </summary>
    private static int WaitInjected(int pid, int tid)
    {
        var deadline = DateTime.UtcNow + StopTimeout;
        while (true)
        {
            if (Interop.Ptrace.Wait(tid, TimeSpan.FromMilliseconds(20)) is int status) return status;
            if (HasExited(pid, tid)) throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.");
            if (DateTime.UtcNow >= deadline) throw new TargetBusyException($"Thread {tid} did not finish the injected system call.");
        }
    }

    private int InjectClone(int pid, int tid, Action<int> reported)
    {
        int twin = 0;
        string? exe = ProcFs.ReadExeLink(pid);
        ulong since = BootTicksNow() - 1;
        long r;
        try
        {
            // clone(flags = 0): a copy-on-write copy of the address space; exit signal 0, so the target is
            // not sent SIGCHLD when the twin ends, and wait() without __WALL never returns it.
            r = InjectSyscall(pid, tid, SYS_clone, 0, 0, 0, 0, 0, ev =>
            {
                if (ev != LibC.PTRACE_EVENT_CLONE && ev != LibC.PTRACE_EVENT_FORK) return;
                twin = (int)Interop.Ptrace.GetEventMsg(tid);
                reported(twin);
            });
        }
        catch (LinuxTraceException) when (twin == 0)
        {
            // Killed between creating the twin and reporting it (a fatal signal skips the event stop):
            // the twin exists, auto-attached to us and stopped, but its pid never reached us.
            foreach (int orphan in FindUnreportedTwins(pid, exe, since))
            {
                _log.LogDebug("Killing the unreported twin {Twin} of process {Pid}.", orphan, pid);
                KillTraced(orphan);
            }
            throw;
        }
        if (r < 0) throw Errno.ToException((int)-r, "clone (injected)", pid);
        if (twin == 0) reported(twin = (int)r);
        // The twin was auto-attached (PTRACE_O_TRACECLONE) and stops before running any code.
        int? status = Interop.Ptrace.Wait(twin, StopTimeout);
        if (status is null && Interop.Ptrace.ThreadState(twin, twin) != 't')
            throw new TargetBusyException($"The twin {twin} did not stop.");
        return twin;
    }

    /// <summary>
    /// SIGKILLs a process we trace and collects its exit, past any stop it reported that nobody waited
    /// for (a twin cut off before its first stop was collected), so no traced zombie stays with us.
    /// </summary>
    private static void KillTraced(int tid)
    {
        LibC.kill(tid, LibC.SIGKILL);
        var deadline = DateTime.UtcNow + StopTimeout;
        try
        {
            while (DateTime.UtcNow < deadline)
            {
                int? status = Interop.Ptrace.Wait(tid, deadline - DateTime.UtcNow);
                if (status is null || LibC.WIFEXITED(status.Value) || LibC.WIFSIGNALED(status.Value)) return;
            }
        }
        catch (ProcessNotFoundException) { }
    }

    /// <summary>
    /// Processes this thread traces that no caller knows of, running the target's executable and started
    /// since the injection began: a twin whose clone event was never reported. Its parent is the target,
    /// or the reaper once the target is gone.
    /// </summary>
    private static List<int> FindUnreportedTwins(int pid, string? exe, ulong sinceTicks)
    {
        var found = new List<int>();
        if (exe is null) return found;
        // TracerPid names the tracing thread, not its process: this thread, which did all the ptrace calls.
        int self = LibC.gettid();
        // The kernel lists and attaches the twin while creating it, before the event stop it skipped.
        foreach (int q in ProcFs.ListProcesses())
        {
            if (q == pid) continue;
            try
            {
                if (ProcFs.ReadStatus(q).TracerPid == self && ProcFs.ReadExeLink(q) == exe && (StartTime(q) ?? 0) >= sinceTicks)
                    found.Add(q);
            }
            catch (LinuxTraceException) { }
        }
        return found;
    }

    /// <summary>Field 22 of /proc/PID/stat: the start time in clock ticks since boot; null when gone.</summary>
    private static ulong? StartTime(int pid)
    {
        try { return ulong.Parse(ProcFs.ReadStatFields(pid)[19]); }
        catch (LinuxTraceException) { return null; }
    }

    /// <summary>Now, in the clock ticks of /proc/PID/stat's start time: /proc/uptime (the same boot-time clock) × USER_HZ (100).</summary>
    private static ulong BootTicksNow()
    {
        string uptime = File.ReadAllText("/proc/uptime");
        return (ulong)(double.Parse(uptime[..uptime.IndexOf(' ')], System.Globalization.CultureInfo.InvariantCulture) * 100);
    }

    /// <summary>Kills the twin and makes the target reap it (an injected wait4); returns how long the target was paused for that.</summary>
    private TimeSpan KillAndReapTwin(int pid, int twin)
    {
        // We are its tracer: collect the exit first, then it is the target's zombie.
        KillTraced(twin);
        // A target that is gone or dying (every thread exited) has nobody to reap the twin but its reaper.
        if (IsDead(pid)) return TimeSpan.Zero;
        using var pin = CpuPin.ToCpuOf(pid, _log);
        var sw = Stopwatch.StartNew();
        var seized = new Dictionary<int, Seized>();
        try
        {
            Interop.Ptrace.Seize(pid, 0);
            var s = new Seized { Tid = pid };
            seized[pid] = s;
            Interop.Ptrace.Interrupt(pid);
            WaitStopped(pid, s, seized, CancellationToken.None);
            long r = InjectSyscall(pid, pid, SYS_wait4, (ulong)twin, 0, LibC.__WALL, 0, 0);
            if (r != twin) _log.LogWarning("Reaping the twin {Twin} in process {Pid} returned {Result}.", twin, pid, r);
            else _log.LogDebug("The twin {Twin} was reaped by process {Pid}.", twin, pid);
        }
        catch (LinuxTraceException ex)
        {
            _log.LogWarning("Could not reap the twin {Twin} in process {Pid}: {Message}", twin, pid, ex.Message);
        }
        finally
        {
            DetachAll(seized, pid);
        }
        return sw.Elapsed;
    }
}
