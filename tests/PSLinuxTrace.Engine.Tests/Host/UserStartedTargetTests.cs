using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Snapshot;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Tracing;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Host;

/// <summary>
/// Issue 14's bug: a service the user started in the same session (Process.Start here, Start-Process in
/// pwsh) is traced and snapshotted like any other process. The .NET runtime of this test process waits
/// for it on SIGCHLD; with the ptrace work in the tracer process, no stop is lost to that wait, and the
/// Process object stays true: not exited while it runs, Kill and ExitCode right afterwards.
/// </summary>
[Collection("SyscallTracer")]
public sealed class UserStartedTargetTests
{
    private static string Exe => Fixtures.Build("checksum", "-pthread");

    [PrivilegedFact("ptrace of a running process")]
    public void TracedAndSnapshottedWithEveryMethod_TheProcessObjectAndTheTargetStayAsTheyWere()
    {
        using var p = FixtureProcess.Start(Exe, "2");
        var process = p.Process;
        Assert.Equal(process.Id, p.TargetPid);

        var events = SyscallTracer.ReadAll(SyscallTracer.Attach(process.Id, new SyscallTraceOptions { Timeout = TimeSpan.FromSeconds(1) })).ToList();
        Assert.Equal(3, events.OfType<ProcessStartEvent>().Count(e => e.Kind == ProcessStartKind.Attach)); // the main thread and two workers
        Assert.DoesNotContain(events, e => e is ProcessExitEvent);
        AssertRunningUntraced(p);

        foreach (var method in new[] { SnapshotMethod.CloneTwin, SnapshotMethod.WriteTracked, SnapshotMethod.Auto })
        {
            string core = Path.Combine(Fixtures.ScratchDirectory, $"user-started-{method}-{Guid.NewGuid():N}.core");
            try
            {
                var snap = new LiveSnapshotter(NullLogger.Instance).Save(process.Id, core, SnapshotMemory.Default, method: method);
                // Never the fallback that keeps the target stopped while it is read (what a lost stop led to).
                Assert.Equal(method == SnapshotMethod.Auto ? nameof(SnapshotMethod.CloneTwin) : method.ToString(), snap.Method);
                Assert.Empty(snap.Warnings);
                Assert.Equal(3, snap.Threads);
            }
            finally
            {
                File.Delete(core);
            }
            AssertRunningUntraced(p);
        }

        process.Kill();
        Assert.True(process.WaitForExit(10_000));
        Assert.Equal(137, process.ExitCode); // 128 + SIGKILL: the runtime saw the real exit, not a ptrace stop
        Assert.False(Directory.Exists($"/proc/{process.Id}"), "the target was not reaped");
    }

    /// <summary>Running, untraced, no thread stopped, no twin or other child left, still computing, and the Process object agrees.</summary>
    private static void AssertRunningUntraced(FixtureProcess p)
    {
        int pid = p.TargetPid;
        Assert.False(p.Process.HasExited, "the Process object says the target exited");
        var status = ProcFs.ReadStatus(pid);
        Assert.Equal(0, status.TracerPid);
        Assert.All(ProcFs.ListThreads(pid), tid => Assert.DoesNotContain(ProcessLiveness.ThreadState(pid, tid), "tTZX"));
        Assert.All(ProcFs.ListThreads(pid), tid => Assert.Equal("", File.ReadAllText($"/proc/{pid}/task/{tid}/children").Trim()));
        var m = Regex.Match(p.Ask("status"), @"rounds=(\d+) errors=(\d+)");
        Assert.True(m.Success);
        Assert.Equal("0", m.Groups[2].Value);
    }
}
