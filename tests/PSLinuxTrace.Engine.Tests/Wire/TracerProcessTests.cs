using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Wire;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Snapshot;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Tracing;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Wire;

/// <summary>
/// The tracer process as the user's side sees it: its errors arrive as the same exceptions, its death
/// is a clear error that leaves the target running, a cancelled job is over only once its tracees are
/// released, and the user's own process can be snapshotted (not syscall-traced).
/// </summary>
[Collection("SyscallTracer")]
public sealed class TracerProcessTests
{
    private static string Fixture => Fixtures.Build("syscalls", "-pthread");

    [Fact]
    public void EngineExceptionsCrossThePipeWithTheirTypeMessageAndFields()
    {
        Exception[] all =
        [
            new TargetPermissionDeniedException("no ptrace for you", "CAP_SYS_PTRACE", null, "run it elsewhere", 1),
            new ProcessNotFoundException(4242, "Process 4242 exited."),
            new UnsupportedFeatureException("Snapshotting a kernel thread", "6.7", "it has no user memory", byKernel: false),
            new BadInputFormatException("truncated note"),
            new TargetBusyException("already traced", 77),
            new NativeCallException("bpf(BPF_PROG_LOAD)", 22, "pid 9"),
            new LinuxTraceException("plain", null, 5),
            new FileNotFoundException("no such core", "/tmp/core.1"),
            new DirectoryNotFoundException("no such folder"),
            new UnauthorizedAccessException("denied"),
            new IOException("No space left on device", 28),   // HResult: the errno (ENOSPC), as .NET sets it on Unix
            new ArgumentException("bad -Interval"),
            new OperationCanceledException("stopped"),
        ];
        foreach (var original in all)
        {
            var rebuilt = RemoteError.Rebuild(TracerJson.DecodeError(TracerJson.Encode(RemoteError.Describe(original))));
            Assert.Equal(original.GetType(), rebuilt.GetType());
            Assert.Equal(original.Message, rebuilt.Message);
            if (original is LinuxTraceException l)
            {
                var r = (LinuxTraceException)rebuilt;
                Assert.Equal(l.ErrorId, r.ErrorId);
                Assert.Equal(l.Errno, r.Errno);
            }
        }
        var denied = (TargetPermissionDeniedException)RemoteError.Rebuild(RemoteError.Describe(all[0]));
        Assert.Equal(("CAP_SYS_PTRACE", "run it elsewhere", 1), (denied.MissingCapability, denied.RecommendedAction, denied.Errno));
        Assert.Equal(4242, ((ProcessNotFoundException)RemoteError.Rebuild(RemoteError.Describe(all[1]))).ProcessId);
        var feature = (UnsupportedFeatureException)RemoteError.Rebuild(RemoteError.Describe(all[2]));
        Assert.Equal(("Snapshotting a kernel thread", "6.7", "it has no user memory", false), (feature.Feature, feature.MinimumVersion, feature.Detail, feature.ByKernel));
        Assert.Equal(77, ((TargetBusyException)RemoteError.Rebuild(RemoteError.Describe(all[4]))).OwnerPid);
        Assert.Equal("/tmp/core.1", ((FileNotFoundException)RemoteError.Rebuild(RemoteError.Describe(all[7]))).FileName);
        // The cmdlets' DiskFull id depends on the errno of a write that failed in the tracer process.
        Assert.Equal(28, RemoteError.Rebuild(TracerJson.DecodeError(TracerJson.Encode(RemoteError.Describe(all[10])))).HResult);
    }

    [PrivilegedFact("ptrace of a running process")]
    public void AnErrorRaisedInTheTracerProcessIsTheSameAsInPlace()
    {
        // kthreadd (pid 2) is a kernel thread: the preflight refuses it before any ptrace call.
        var inPlace = Assert.Throws<UnsupportedFeatureException>(() => SnapshotPreflight.Check(2));
        string core = Path.Combine(Fixtures.ScratchDirectory, $"kthread-{Guid.NewGuid():N}.core");
        var remote = Assert.Throws<UnsupportedFeatureException>(() => new LiveSnapshotter(NullLogger.Instance).Save(2, core, SnapshotMemory.Default));
        Assert.Equal(inPlace.Message, remote.Message);
        Assert.False(remote.ByKernel);
        Assert.False(File.Exists(core));
    }

    [Fact]
    public void AMissingTracerProgramIsAClearError()
    {
        var ex = Assert.Throws<LinuxTraceException>(() =>
            TracerClient.Start(new TracerRequest { Operation = TracerOperation.AttachTrace, Pid = 1 }, "/nonexistent/pslinuxtrace-tracer"));
        Assert.Contains("is missing", ex.Message);
        Assert.Contains(TracerHost.PathVariable, ex.Message);
    }

    [Fact]
    public void ATracerProgramThatEndsBeforeItConnectsIsAClearError()
    {
        var ex = Assert.Throws<LinuxTraceException>(() =>
            TracerClient.Start(new TracerRequest { Operation = TracerOperation.AttachTrace, Pid = 1 }, "/bin/false"));
        Assert.Contains("ended before it connected (exit code 1)", ex.Message);
    }

    [Fact]
    public void OnlyTheProcessItStartedIsTakenAsTheTracer()
    {
        using var listener = TracerChannel.Listen(out string name);
        using var stranger = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        stranger.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint("\0" + name));   // this process, not the one started
        using var sleeper = System.Diagnostics.Process.Start("/bin/sleep", "30");
        try
        {
            var ex = Assert.Throws<LinuxTraceException>(() => TracerChannel.Accept(listener, sleeper, TimeSpan.FromSeconds(1)));
            Assert.Contains("did not connect within 1 s", ex.Message);
            Assert.True(sleeper.WaitForExit(5000), "the tracer that never connected is killed");
            // The stranger's connection was accepted and closed at once: it reads the end of the stream.
            Assert.Equal(0, stranger.Receive(new byte[1]));
        }
        finally
        {
            if (!sleeper.HasExited) sleeper.Kill();
        }
    }

    [Fact]
    public void TheTracerConnectsOnlyToItsParent()
    {
        // Its parent is sh, while the socket is this process's: it refuses, says why, and exits 2.
        using var listener = TracerChannel.Listen(out string name);
        var run = Tool.Run("/bin/sh", ["-c", $"'{TracerHost.ExecutablePath}' {TracerChannel.ConnectOption} '{name}'; echo rc=$?"]);
        Assert.Contains("rc=2", run.StdOut);
        Assert.Contains("not to this tracer's parent", run.StdErr);
    }

    [PrivilegedFact("ptrace of a running process")]
    public void ATracerProcessKilledMidTraceEndsTheTraceWithAClearErrorAndTheTargetRunsOn()
    {
        using var p = FixtureProcess.Start(Fixture, "wait");
        int pid = p.TargetPid;
        var reader = SyscallTracer.Attach(pid, new SyscallTraceOptions { Timeout = TimeSpan.FromMinutes(2) });
        Assert.True(reader.WaitToReadAsync().AsTask().Wait(TimeSpan.FromSeconds(30))); // attached
        int tracer = ProcFs.ReadStatus(ProcFs.ReadStatus(pid).TracerPid).Tgid;
        Assert.Equal(Environment.ProcessId, ProcFs.ReadStatus(tracer).ParentPid);
        Interop.LibC.kill(tracer, Interop.LibC.SIGKILL);
        var ex = Assert.Throws<LinuxTraceException>(() => SyscallTracer.ReadAll(reader).ToList());
        Assert.Contains("killed by SIGKILL", ex.Message);
        // The kernel detached the target when its tracer died: it runs on, untraced, and still answers.
        Assert.True(ProcessLiveness.Within(TimeSpan.FromSeconds(5), () => ProcFs.ReadStatus(pid).TracerPid == 0));
        Assert.False(p.Process.HasExited);
        Assert.StartsWith("count=", p.Ask("count"));
    }

    [PrivilegedFact("ptrace of a running process")]
    public void ACancelledTraceCompletesOnlyOnceTheTargetIsReleased()
    {
        using var p = FixtureProcess.Start(Fixture, "wait");
        int pid = p.TargetPid;
        using var cts = new CancellationTokenSource();
        var reader = SyscallTracer.Attach(pid, new SyscallTraceOptions(), cancel: cts.Token);
        Assert.True(reader.WaitToReadAsync().AsTask().Wait(TimeSpan.FromSeconds(30)));
        cts.Cancel();
        // What was in flight is drained (a channel's Completion waits for its last item to be read).
        var drain = Task.Run(() => SyscallTracer.ReadAll(reader).Count());
        Assert.True(drain.Wait(TimeSpan.FromSeconds(30)));
        // No grace period: once the channel completes, nothing of the trace is left on the target.
        var status = ProcFs.ReadStatus(pid);
        Assert.Equal(0, status.TracerPid);
        Assert.All(ProcFs.ListThreads(pid), tid => Assert.DoesNotContain(ProcessLiveness.ThreadState(pid, tid), "tT"));
        Assert.StartsWith("count=", p.Ask("count"));
    }

    [PrivilegedFact("ptrace of a running process")]
    public void TheUsersOwnProcessCanBeSnapshottedButNotSyscallTraced()
    {
        var ex = Assert.Throws<TargetPermissionDeniedException>(() => SyscallTracer.ReadAll(SyscallTracer.Attach(Environment.ProcessId, new SyscallTraceOptions())).ToList());
        Assert.Contains("would stop the very threads that read the events", ex.Message);
        Assert.Contains("another PowerShell session", ex.RecommendedAction);

        string core = Path.Combine(Fixtures.ScratchDirectory, $"self-{Guid.NewGuid():N}.core");
        try
        {
            var snap = new LiveSnapshotter(NullLogger.Instance).Save(Environment.ProcessId, core, SnapshotMemory.Default, method: SnapshotMethod.CloneTwin);
            Assert.Equal("CloneTwin", snap.Method);
            Assert.Equal(ProcFs.ListThreads(Environment.ProcessId).Count, snap.Threads, new ToleranceComparer(4)); // threads come and go in a test host
            Assert.Equal(0, ProcFs.ReadStatus(Environment.ProcessId).TracerPid);
            var gdb = Tool.Run("gdb", ["-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "info threads", "/proc/self/exe".Replace("self", Environment.ProcessId.ToString()), core]);
            Assert.Contains("Thread", gdb.StdOut);
        }
        finally
        {
            File.Delete(core);
        }
    }

    private sealed class ToleranceComparer(int tolerance) : IEqualityComparer<int>
    {
        public bool Equals(int x, int y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(int obj) => 0;
    }
}
