using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Tracing;
using PSLinuxTrace.Engine.Tracing.Bpf;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Tracing;

/// <summary>
/// The eBPF engine against real programs (tests/Fixtures/syscalls.c), compared with the ptrace
/// engine on the same program, and with strace -c for counts.
/// </summary>
// With every test that loads BPF programs (the Exec collection), one at a time: some count this
// process's BPF fds, which a BPF test running beside them would change.
[Collection("Exec")]
public sealed class BpfSyscallTracerTests
{
    private const string Bpf = "CAP_BPF and CAP_PERFMON";
    private static readonly TimeSpan Generous = TimeSpan.FromMinutes(2);
    private static readonly ISyscallArchitecture X64 = SyscallArchitectureX64.Instance;

    private static string Fixture => Fixtures.Build("syscalls", "-pthread");

    private static SyscallTraceOptions Options(string? filter = null) =>
        new() { Filter = filter is null ? null : SyscallFilter.Parse([filter], X64), Timeout = Generous };

    private static List<TraceEvent> RunBpf(string[] args, SyscallTraceOptions? options = null, SyscallSummaryBuilder? summary = null) =>
        SyscallTracer.ReadAll(BpfSyscallTracer.Launch(Fixture, args, options ?? Options(), stdoutPath: "/dev/null", summary: summary)).ToList();

    private static List<TraceEvent> RunPtrace(string[] args, SyscallTraceOptions? options = null) =>
        SyscallTracer.ReadAll(SyscallTracer.Launch(Fixture, args, (options ?? Options()) with { UseSeccomp = false }, stdoutPath: "/dev/null")).ToList();

    /// <summary>
    /// A line with what differs between two runs of one program taken out: addresses (ASLR), the tracee's
    /// pid, and its parent's (the ptrace engine launches from its tracer process, the eBPF one from here).
    /// </summary>
    private static string Normalized(SyscallEvent e) =>
        e.Name == "getppid" ? "getppid() = PPID" : Regex.Replace(e.Line.Replace(e.Pid.ToString(), "PID"), "0x[0-9a-f]{6,}", "0xADDR");

    [PrivilegedFact(Bpf)]
    public void FullTrace_SameCallsArgumentsAndResultsAsThePtraceEngine()
    {
        var bpf = RunBpf(["basic"]);
        var ptrace = RunPtrace(["basic"]);
        var ours = bpf.OfType<SyscallEvent>().ToList();
        var theirs = ptrace.OfType<SyscallEvent>().ToList();
        Assert.Equal(theirs.Select(e => e.Name), ours.Select(e => e.Name));
        var differing = ours.Zip(theirs).Where(p => Normalized(p.First) != Normalized(p.Second))
            .Select(p => $"bpf:    {p.First.Line}\nptrace: {p.Second.Line}").ToList();
        Assert.True(differing.Count == 0, string.Join("\n", differing));
        Assert.Equal(theirs.Select(e => e.Errno), ours.Select(e => e.Errno));
        // The launch saw the program's own execve first, and the trace ends with its exit.
        Assert.Equal("execve", ours[0].Name);
        Assert.Equal($"[\"{Fixture}\", \"basic\"]", ours[0].Arguments[1]);
        Assert.Equal(ProcessStartKind.Launch, bpf.OfType<ProcessStartEvent>().First().Kind);
        Assert.Equal(TraceEngine.Bpf, bpf.OfType<ProcessStartEvent>().First().Engine);
        Assert.Equal(3, Assert.Single(bpf.OfType<ProcessExitEvent>()).ExitCode);
        // Every event numbered, none lost.
        Assert.Equal(Enumerable.Range(1, bpf.Count).Select(i => (ulong)i), bpf.Select(e => e.Sequence));
    }

    [PrivilegedFact(Bpf)]
    public void AFailedCallOnMemoryNobodyTouched_SaysUnavailable_WhereThePtraceEngineReadsIt()
    {
        // write(-1, buf, 16) with buf in a file mapping never touched: EBADF before the kernel reads buf,
        // so the page is absent at entry and at exit, and the kernel program cannot read it.
        var bpf = RunBpf(["untouched"], Options("write")).OfType<SyscallEvent>().Single();
        var ptrace = RunPtrace(["untouched"], Options("write")).OfType<SyscallEvent>().Single();
        Assert.Equal(SyscallDecoder.Unavailable, bpf.Arguments[1]);
        Assert.Equal("\"" + File.ReadAllText("/etc/passwd")[..16] + "\"", ptrace.Arguments[1]);
        Assert.Equal(ptrace.Result, bpf.Result);
        Assert.Equal("EBADF", bpf.Errno);
    }

    [PrivilegedFact(Bpf)]
    public void Filter_InTheKernel_DeliversOnlyTheSelectedCalls()
    {
        var events = RunBpf(["spin", "20000"], Options("openat"));
        var calls = events.OfType<SyscallEvent>().ToList();
        Assert.NotEmpty(calls);
        Assert.All(calls, c => Assert.Equal("openat", c.Name));
        // The 20000 getppid never reached the ring buffer: the numbers have no gap, and they are few.
        Assert.DoesNotContain(events, e => e is LostEventsEvent);
        Assert.Equal((ulong)events.Count, events[^1].Sequence);
        Assert.True(events.Count < 50, $"{events.Count} events");
    }

    [PrivilegedFact(Bpf)]
    public void FailedOnly_InTheKernel_WithTheInputsCopiedAtExit()
    {
        var calls = RunBpf(["basic"], Options() with { FailedOnly = true }).OfType<SyscallEvent>().ToList();
        Assert.All(calls, c => Assert.NotNull(c.Errno));
        var enoent = Assert.Single(calls, c => c.Name == "openat");
        Assert.Equal("\"/nonexistent/pslinuxtrace\"", enoent.Arguments[1]);
        Assert.Equal("O_RDONLY|O_CLOEXEC", enoent.Arguments[2]);
    }

    [PrivilegedFact(Bpf)]
    public void Threads_FollowedInTheKernel_AsThePtraceEngineSeesThem()
    {
        var events = RunBpf(["threads", "8"], Options("getppid,write"));
        var calls = events.OfType<SyscallEvent>().ToList();
        Assert.Equal(40, calls.Count(c => c.Name == "getppid"));
        Assert.Equal(8, calls.Count(c => c.Name == "write"));
        var threads = events.OfType<ProcessStartEvent>().Where(s => s.Kind == ProcessStartKind.Thread).ToList();
        Assert.Equal(8, threads.Count);
        int pid = events.OfType<ProcessStartEvent>().First().Pid;
        Assert.All(threads, t => Assert.Equal(pid, t.Pid));
        Assert.Equal(8, calls.Where(c => c.Name == "getppid").Select(c => c.Tid).Distinct().Count());
        Assert.Equal(8, events.OfType<ProcessExitEvent>().Count(e => e.IsThread));
    }

    [PrivilegedFact(Bpf)]
    public void ForkExec_ChildFollowedThroughItsExec_AndNoFollowStaysOnTheParent()
    {
        var events = RunBpf(["forkexec"], Options("%process"));
        var fork = Assert.Single(events.OfType<ProcessStartEvent>(), s => s.Kind == ProcessStartKind.Fork);
        var childExec = Assert.Single(events.OfType<SyscallEvent>(), c => c.Name == "execve" && c.Tid == fork.Tid);
        // The child's literals were never touched since the fork: the exec record supplies them.
        Assert.Equal("\"/bin/true\"", childExec.Arguments[0]);
        Assert.Equal("[\"true\"]", childExec.Arguments[1]);
        var wait = Assert.Single(events.OfType<SyscallEvent>(), c => c.Name == "wait4");
        Assert.Equal(fork.Tid, wait.ReturnValue);
        Assert.Equal("[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]", wait.Arguments[1]);
        Assert.Equal("/usr/bin/true", events.OfType<ProcessStartEvent>().Single(s => s.Kind == ProcessStartKind.Exec && s.Tid == fork.Tid).ExecutablePath);

        var alone = RunBpf(["forkexec"], Options("execve,wait4") with { FollowForks = false });
        Assert.Single(alone.OfType<SyscallEvent>(), c => c.Name == "execve");
        Assert.Single(alone.OfType<SyscallEvent>(), c => c.Name == "wait4");
        Assert.DoesNotContain(alone.OfType<ProcessStartEvent>(), s => s.Kind is ProcessStartKind.Fork or ProcessStartKind.Clone);
    }

    [PrivilegedFact(Bpf)]
    public void ExecveFromANonLeaderThread_IsReportedOnTheLeaderPid()
    {
        var events = RunBpf(["threadexec"], Options("execve,exit_group"));
        int pid = events.OfType<ProcessStartEvent>().First().Pid;
        var thread = Assert.Single(events.OfType<ProcessStartEvent>(), s => s.Kind == ProcessStartKind.Thread);
        var execs = events.OfType<SyscallEvent>().Where(e => e.Name == "execve").ToList();
        Assert.Equal(2, execs.Count);
        Assert.Equal("\"/bin/true\"", execs[1].Arguments[0]);
        Assert.Equal(pid, execs[1].Tid);
        Assert.Equal(thread.Tid, events.OfType<ProcessStartEvent>().Last(s => s.Kind == ProcessStartKind.Exec).ParentTid);
        Assert.Equal(0, events.OfType<ProcessExitEvent>().Single(e => e.Tid == pid).ExitCode);   // the replaced leader's "exit" is not one
    }

    [PrivilegedFact(Bpf)]
    public void Signals_AreReported_AndTheProgramHandlesThem()
    {
        var events = RunBpf(["signal"], Options("kill"));
        var sig = Assert.Single(events.OfType<SignalEvent>());
        Assert.Equal("SIGUSR1", sig.Signal);
        Assert.Equal("SI_USER", sig.Code);
        Assert.Equal(events.OfType<ProcessStartEvent>().First().Pid, sig.SenderPid);
        Assert.Equal(0, events.OfType<ProcessExitEvent>().Single().ExitCode);
        Assert.Equal("SIGKILL", Assert.Single(RunBpf(["kill"]).OfType<ProcessExitEvent>()).Signal);
    }

    [PrivilegedFact(Bpf)]
    public void Summary_CountedInTheKernel_EqualsStraceC_AndThePtraceEngine()
    {
        var summary = new SyscallSummaryBuilder();
        var events = RunBpf(["basic"], Options() with { DecodeArguments = false }, summary);
        Assert.DoesNotContain(events, e => e is SyscallEvent);   // no ring-buffer traffic for the calls
        var ours = summary.Build().ToDictionary(r => r.Name, r => (r.Calls, r.Errors));
        var ptrace = new SyscallSummaryBuilder();
        foreach (var e in RunPtrace(["basic"], Options() with { DecodeArguments = false }).OfType<SyscallEvent>()) ptrace.Add(e);
        Assert.Equal(ptrace.Build().Select(r => (r.Name, r.Calls, r.Errors)).OrderBy(r => r.Name), ours.Select(kv => (kv.Key, kv.Value.Calls, kv.Value.Errors)).OrderBy(r => r.Item1));

        string output = Path.Combine(Fixtures.ScratchDirectory, $"strace-c-{Guid.NewGuid():N}.txt");
        Tool.Run("strace", ["-f", "-c", "-U", "name,calls,errors", "-o", output, Fixture, "basic"], Generous);
        var theirs = new Dictionary<string, (long, long)>();
        foreach (string line in File.ReadAllLines(output))
        {
            var m = Regex.Match(line, @"^\s*(\w+)\s+(\d+)\s*(\d*)\s*$");
            if (m.Success && m.Groups[1].Value != "total") theirs[m.Groups[1].Value] = (long.Parse(m.Groups[2].Value), m.Groups[3].Value.Length == 0 ? 0 : long.Parse(m.Groups[3].Value));
        }
        Assert.NotEmpty(theirs);
        // strace -c counts a call when it returns: exit_group never does. Both engines count it, as it is made.
        Assert.Equal((1L, 0L), ours["exit_group"]);
        Assert.Equal(theirs.OrderBy(kv => kv.Key), ours.Where(kv => kv.Key != "exit_group").OrderBy(kv => kv.Key));
    }

    [PrivilegedFact(Bpf)]
    public void ATinyBuffer_LosesEvents_AndReportsEveryOneOfThem()
    {
        const int Calls = 200_000;
        var events = RunBpf(["spin", Calls.ToString()], Options("getppid") with { BufferSize = 16384 });
        var lost = events.OfType<LostEventsEvent>().ToList();
        Assert.NotEmpty(lost);
        Assert.All(lost, l => Assert.InRange(l.Cpu, 0, Environment.ProcessorCount - 1));
        // Records the kernel wrote: each getppid, the exec and the exit. Delivered plus lost is all of them.
        long delivered = events.Count(e => e is SyscallEvent || e is ProcessExitEvent || e is ProcessStartEvent { Kind: ProcessStartKind.Exec });
        Assert.Equal(Calls + 2, delivered + lost.Sum(l => l.Count));
        Assert.True(events.OfType<SyscallEvent>().Count(e => e.Name == "getppid") < Calls);
        // Numbers run on through the losses: a LostEventsEvent of Count N stands for N numbers.
        for (int i = 1; i < events.Count; i++)
            Assert.Equal(events[i - 1].Sequence + (events[i - 1] is LostEventsEvent l ? (ulong)l.Count : 1), events[i].Sequence);
    }

    [PrivilegedFact(Bpf)]
    public void Attach_SeesEveryThreadAtOnce_AndTheProcessNeverStops()
    {
        using var fixture = FixtureProcess.Start(Fixture, "threadwait", "3");   // Process.Start: no ptrace, so allowed
        int pid = fixture.TargetPid;
        using var cts = new CancellationTokenSource();
        var reader = BpfSyscallTracer.Attach([pid], Options("getppid"), cancel: cts.Token);
        var seen = new List<TraceEvent>();
        foreach (var e in SyscallTracer.ReadAll(reader))
        {
            seen.Add(e);
            if (seen.OfType<SyscallEvent>().Select(s => s.Tid).Distinct().Count() == 3) break;   // the 3 looping threads
        }
        Assert.Equal("0", ReadStatus(pid, "TracerPid:"));
        cts.Cancel();
        _ = SyscallTracer.ReadAll(reader).ToList();
        Assert.Equal(4, seen.OfType<ProcessStartEvent>().Count(s => s.Kind == ProcessStartKind.Attach));   // the main thread too
        Assert.DoesNotContain(seen.OfType<SyscallEvent>(), s => s.Tid == pid);   // it blocks in read, which began before the attach
        Assert.All(seen.OfType<SyscallEvent>(), s => Assert.Equal(pid, s.Pid));
        Assert.DoesNotContain("T", ReadStatus(pid, "State:"));
        Quit(fixture);   // it still answers: the read the trace never saw returns
        Assert.True(fixture.Process.WaitForExit(10_000));
        Assert.Equal(0, fixture.Process.ExitCode);
    }

    [PrivilegedFact(Bpf)]
    public void Cancel_WhileLaunched_KillsTheTree_AndReapsIt()
    {
        using var cts = new CancellationTokenSource();
        var reader = BpfSyscallTracer.Launch(Fixture, ["spin", "100000000"], Options(), cancel: cts.Token, stdoutPath: "/dev/null");
        int pid = 0;
        foreach (var e in SyscallTracer.ReadAll(reader))
        {
            pid = e.Pid;
            if (e is SyscallEvent { Name: "getppid" }) break;
        }
        cts.Cancel();
        _ = SyscallTracer.ReadAll(reader).ToList();
        Assert.False(Directory.Exists($"/proc/{pid}"), $"process {pid} survived or was not reaped");
    }

    [PrivilegedFact(Bpf)]
    public void Teardown_LeavesNoBpfObjectInThisProcess()
    {
        int before = BpfFds();
        using (var cts = new CancellationTokenSource())
        {
            var reader = BpfSyscallTracer.Launch(Fixture, ["spin", "100000000"], Options(), cancel: cts.Token, stdoutPath: "/dev/null");
            Assert.True(BpfFds() > before);
            foreach (var e in SyscallTracer.ReadAll(reader)) if (e is SyscallEvent) break;
            cts.Cancel();
            _ = SyscallTracer.ReadAll(reader).ToList();
        }
        _ = RunBpf(["basic"]);   // and after a trace that ended by itself
        Assert.Equal(before, BpfFds());
        Assert.DoesNotContain(File.ReadLines("/proc/self/maps"), l => l.Contains("bpf-map") || l.Contains("bpf_ringbuf"));
    }

    [PrivilegedFact(Bpf)]
    public void Engines_AutoPicksBpfAsRoot_AndSaysWhyWhenItCannot()
    {
        var auto = SyscallTraceEngines.Choose(SyscallEngine.Auto, new SyscallTraceOptions());
        Assert.Equal(TraceEngine.Bpf, auto.Engine);
        Assert.Contains("CAP_BPF", auto.Reason);
        var big = SyscallTraceEngines.Choose(SyscallEngine.Auto, new SyscallTraceOptions { StringLimit = 100_000 });
        Assert.Equal(TraceEngine.Ptrace, big.Engine);
        Assert.Contains("-StringLimit", big.Reason);
        Assert.Throws<ArgumentException>(() => SyscallTraceEngines.Choose(SyscallEngine.Bpf, new SyscallTraceOptions { StringLimit = 100_000 }));
        Assert.Equal(TraceEngine.Ptrace, SyscallTraceEngines.Choose(SyscallEngine.Ptrace, new SyscallTraceOptions()).Engine);
        Assert.Null(SyscallTraceEngines.MissingCapabilities());
    }

    /// <summary>This process's fds on BPF objects (maps, programs, links, BTF) and perf events.</summary>
    private static int BpfFds() => Directory.EnumerateFileSystemEntries("/proc/self/fd")
        .Count(fd => new FileInfo(fd).LinkTarget is { } t && (t.StartsWith("anon_inode:bpf") || t.Contains("perf_event")));

    private static void Quit(FixtureProcess f)
    {
        try { f.Process.StandardInput.WriteLine("quit"); f.Process.StandardInput.Flush(); }
        catch (IOException) { }
    }

    private static string ReadStatus(int pid, string key) =>
        File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key))[key.Length..].Trim();
}
