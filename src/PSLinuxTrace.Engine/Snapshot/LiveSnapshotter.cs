using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Wire;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// Writes an ELF core of a running process while stopping it only for a few milliseconds. Every
/// thread is seized and interrupted (no signal the target can see); then the memory is read while the
/// target runs, in one of two ways: WriteTracked (<see cref="WriteTrackedCopy"/>) copies it while the
/// target runs with its writes tracked and re-reads, at a second short stop, only what it wrote;
/// CloneTwin (<see cref="CloneTwin"/>) reads a copy-on-write twin the target forks. A target under
/// seccomp gets no injected call and stays stopped while it is read. Signals that arrived during a
/// pause are handed back on detach. In the user's process the job runs in the tracer process.
/// </summary>
public sealed class LiveSnapshotter
{
    private readonly ILogger _log;

    public LiveSnapshotter(ILogger log) => _log = log;

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
        int tracer = PtraceSession.TracerOf(pid);
        if (tracer > 0) throw new TargetBusyException($"Process {pid} is already traced by process {tracer}; a process can have only one tracer.", tracer);
        var status = SnapshotPreflight.Check(pid);
        using var session = new PtraceSession(_log);
        var job = new Job(this, session, pid, path, include, progress, cancel);
        try
        {
            return job.Run(method, status);
        }
        catch (ProcessNotFoundException ex) when (ex.ProcessId != pid && ProcessLiveness.IsExiting(pid, pid))
        {
            // A thread or the twin vanished because the whole target was killed: say so of the target.
            throw new ProcessNotFoundException(pid, $"Process {pid} exited during the snapshot.", ex);
        }
        finally
        {
            job.CleanUp();
        }
    }

    /// <summary>One snapshot: its choices, what it holds (the stop, the twin, the tracker, the file) and its figures.</summary>
    private sealed class Job(LiveSnapshotter owner, PtraceSession session, int pid, string path, SnapshotMemory include,
        Action<long, long>? progress, CancellationToken cancel)
    {
        private readonly ILogger _log = owner._log;
        private readonly Stopwatch _total = Stopwatch.StartNew();
        private readonly List<string> _warnings = new();
        private readonly CloneTwin _twins = new(session, pid, owner._log);
        private TimeSpan _paused;
        private StoppedProcess? _stopped;
        private FileStream? _output;
        private CpuPin? _pin;
        private WriteTracker? _tracker;
        private int _twin, _unusedTwin;        private bool _complete;

        private void Warn(string message)
        {
            _warnings.Add(message);
            _log.LogWarning("{Message}", message);
        }

        public ProcessSnapshot Run(SnapshotMethod method, ProcessStatus? status)
        {
            var chosen = method;
            if (method == SnapshotMethod.Auto)
            {
                long anonymousKb = SnapshotPreflight.AnonymousResidentKb(status);
                chosen = SnapshotPreflight.ChooseAuto(anonymousKb);
                _log.LogDebug("Process {Pid} has {Mib} MiB of anonymous memory resident: {Method}.", pid, anonymousKb / 1024, chosen);
            }
            bool trackable = chosen != SnapshotMethod.CloneTwin && CanTrack();
            // Only a caller who asked for write tracking is told it was not used (Auto falls back silently, as documented).
            if (method == SnapshotMethod.WriteTracked && !trackable)
                Warn(WriteTracker.IsSupported
                    ? $"Process {pid} has a userfaultfd of its own, which write tracking could get in the way of; a copy-on-write twin is used instead."
                    : "This kernel cannot track writes (asynchronous write-protect userfaultfd and PAGEMAP_SCAN need Linux 6.7); a copy-on-write twin is used instead.");

            _output = CoreWriter.CreateFile(path);
            _pin = CpuPin.ToCpuOf(pid, _log);
            var pause = Stopwatch.StartNew();
            _stopped = StoppedProcess.Stop(session, pid, _log, cancel);
            _log.LogInformation("Stopped {Count} thread(s) of process {Pid}.", _stopped.Threads.Count, pid);
            int injector = _stopped.Holds(pid) ? pid : _stopped.Threads[0];
            var injection = new SyscallInjector(session, pid);
            string? risk = SnapshotPreflight.InjectionRisk(pid, injector);
            var tracking = new WriteTrackedCopy(session, pid, _log);
            if (risk is null && trackable && (_tracker = tracking.StartTracking(injection, injector)) is not null)
                return SaveTracked(tracking, pause);

            var (image, maps) = CoreImageCollector.Collect(session, pid, _stopped.Threads);
            if (risk is not null) Warn(risk);
            else if (!MakeTwin(injection, injector) && method == SnapshotMethod.Auto && chosen == SnapshotMethod.CloneTwin && CanTrack()
                && (_tracker = tracking.StartTracking(injection, injector)) is not null)
            {
                // Auto chose the twin, but the process cannot fork (a pids limit, RLIMIT_NPROC): track its writes instead
                // (when Auto chose tracking, it was tried first and failed).
                _log.LogInformation("Process {Pid} could not clone a twin; its writes are tracked instead.", pid);
                return SaveTracked(tracking, pause);
            }
            return SaveFromTwinOrStopped(image, maps, pause);
        }

        private bool CanTrack() => WriteTracker.IsSupported && !SnapshotPreflight.UsesUserfaultfd(pid);

        /// <summary>Makes the twin; false (with a warning) when the process could not clone one.</summary>
        private bool MakeTwin(SyscallInjector injection, int injector)
        {
            try
            {
                // The twin's pid is kept the moment the kernel reports it, so that a target killed before
                // the injected call returns still leaves a twin CleanUp kills and reaps.
                _twin = _twins.Make(injection, injector, t => _twin = t);
                _log.LogInformation("Process {Pid} cloned a copy-on-write twin {Twin}; memory is read from the twin.", pid, _twin);
                return true;
            }
            catch (LinuxTraceException ex) when (ex is not ProcessNotFoundException)
            {
                // A twin reported before the failure is not used; CleanUp kills and reaps it.
                _unusedTwin = _twin;
                _twin = 0;
                _log.LogDebug("Process {Pid} could not clone a twin: {Message}", pid, ex.Message);
                _cloneFailure = ex.Message;
                return false;
            }
        }

        private string? _cloneFailure;

        private ProcessSnapshot SaveTracked(WriteTrackedCopy tracking, Stopwatch pause)
        {
            // Copy while it runs, tracking what it writes; then stop it again only to re-read that.
            _stopped!.Resume();
            _paused += pause.Elapsed;
            _pin!.Dispose();
            var (image, size, missing, pausedAgain) = tracking.Save(_output!, include, _tracker!, progress, cancel);
            _paused += pausedAgain;
            _output!.Dispose();
            _output = null;
            // Unregistering walks every tracked page (see WriteTracker): part of the snapshot's Duration.
            _tracker!.Dispose();
            _tracker = null;
            return Done(image, size, missing, nameof(SnapshotMethod.WriteTracked));
        }

        private ProcessSnapshot SaveFromTwinOrStopped(CoreImage image, List<MemoryMapping> maps, Stopwatch pause)
        {
            if (_twin == 0 && _cloneFailure is not null)
                Warn($"Could not make the target clone a twin ({_cloneFailure}); the target stays stopped while its memory is read.");
            if (_twin > 0)
            {
                _stopped!.Resume();
                _paused += pause.Elapsed;
            }
            _pin!.Dispose(); // reading and writing use every CPU (the copy's threads would inherit a pinned mask)
            int source = _twin > 0 ? _twin : pid;
            CoreImageCollector.AddSegments(image, maps, source, include);
            var (fileSize, unreadable) = CopyFrom(source, image);
            if (unreadable > 0) _log.LogInformation("{Bytes} bytes could not be read (guard pages) and were written as zeros.", unreadable);
            if (_twin == 0)
            {
                _stopped!.Resume();
                _paused += pause.Elapsed;
            }
            _output!.Dispose();
            _output = null;
            string used = _twin > 0 ? nameof(SnapshotMethod.CloneTwin) : "Stopped";
            if (_twin > 0)
            {
                _paused += _twins.KillAndReap(_twin);
                _twin = 0;
            }
            return Done(image, fileSize, unreadable, used);
        }

        /// <summary>Writes the core from the twin (or the stopped target itself), through /proc/PID/mem.</summary>
        private (long FileSize, long Unreadable) CopyFrom(int source, CoreImage image)
        {
            // Read with process_vm_readv, the twin would copy every page it shares with the target.
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
            try
            {
                // Once every byte is read, the twin can go while the file is still being written.
                return CoreWriter.Write(_output!, image, Read, progress, cancel, () =>
                {
                    if (_twin > 0) Interop.LibC.kill(_twin, Interop.LibC.SIGKILL);
                });
            }
            finally
            {
                if (targetMemory.IsValueCreated) targetMemory.Value.Dispose();
            }
        }

        private ProcessSnapshot Done(CoreImage image, long fileSize, long unreadable, string used)
        {
            _complete = true;
            long memory = image.Segments.Sum(s => (long)s.DumpSize);
            _log.LogInformation("Wrote {Path}: {Bytes} bytes of memory in {Segments} segments; the target was paused {Paused} ms.",
                path, memory, image.Segments.Count, _paused.TotalMilliseconds);
            return new ProcessSnapshot(Path.GetFullPath(path), pid, image.Threads.Count, image.Segments.Count, fileSize, memory,
                _paused, _total.Elapsed, used, _warnings.ToArray()) { UnreadableBytes = unreadable };
        }

        /// <summary>Whatever happened: the target runs on, untraced, its writes no longer tracked; the twin is gone and reaped; no partial file.</summary>
        public void CleanUp()
        {
            _pin?.Dispose();
            _output?.Dispose();
            _stopped?.Resume();
            _tracker?.Dispose();
            if (_twin > 0) _twins.KillAndReap(_twin);
            if (_unusedTwin > 0) _twins.KillAndReap(_unusedTwin);
            if (_complete) return;
            try { File.Delete(path); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
