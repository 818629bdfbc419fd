using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Tracing;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Tracing;

/// <summary>
/// The tracer against real programs (tests/Fixtures/syscalls.c), cross-checked with strace -f on the
/// same program and the same filter.
/// </summary>
[Collection("SyscallTracer")] // ptrace-heavy tests run one at a time: the box has 2 busy cores
public sealed class SyscallTracerTests
{
    private const string Ptrace = "ptrace (CAP_SYS_PTRACE)";
    private static readonly TimeSpan Generous = TimeSpan.FromMinutes(2);

    private static string Fixture => Fixtures.Build("syscalls", "-pthread");

    private static List<TraceEvent> Launch(string[] args, SyscallTraceOptions? options = null, string? stdout = "/dev/null", CancellationToken cancel = default)
    {
        var reader = SyscallTracer.Launch(Fixture, args, (options ?? new SyscallTraceOptions()) with { Timeout = (options?.Timeout) ?? Generous },
            cancel: cancel, stdoutPath: stdout);
        return SyscallTracer.ReadAll(reader).ToList();
    }

    private sealed record StraceLine(int Pid, string Name, string Args, string Result);

    /// <summary>strace -f -qq -o FILE -e trace=FILTER FIXTURE ARGS, parsed (unfinished/resumed pairs joined).</summary>
    private static List<StraceLine> Strace(string filter, string[] args, bool seccomp = false, bool yFlag = false)
    {
        string output = Path.Combine(Fixtures.ScratchDirectory, $"strace-{Guid.NewGuid():N}.txt");
        var argv = new List<string> { "-f", "-qq", "-s", "32", "-o", output, "-e", "trace=" + filter, "-e", "signal=none" };
        if (seccomp) argv.Add("--seccomp-bpf");
        if (yFlag) argv.Add("-y");
        argv.Add(Fixture);
        argv.AddRange(args);
        var r = Tool.Run("strace", argv, Generous);
        Assert.True(File.Exists(output), $"strace failed: {r.StdErr}");
        var lines = new List<StraceLine>();
        var pending = new Dictionary<int, string>();
        var rx = new Regex(@"^(\d+)\s+(.*)$");
        foreach (string raw in File.ReadAllLines(output))
        {
            var m = rx.Match(raw);
            string rest = m.Success ? m.Groups[2].Value : raw;
            int pid = m.Success ? int.Parse(m.Groups[1].Value) : 0;
            if (rest.StartsWith("+++") || rest.StartsWith("---")) continue;
            if (rest.EndsWith("<unfinished ...>")) { pending[pid] = rest[..^"<unfinished ...>".Length].TrimEnd(); continue; }
            var resumed = Regex.Match(rest, @"^<\.\.\. (\w+) resumed>(.*)$");
            if (resumed.Success) rest = (pending.Remove(pid, out var start) ? start : resumed.Groups[1].Value + "(") + resumed.Groups[2].Value;
            var call = Regex.Match(rest, @"^(\w+)\((.*)\)\s+= (.*)$");
            if (call.Success) lines.Add(new StraceLine(pid, call.Groups[1].Value, call.Groups[2].Value, call.Groups[3].Value));
            else if (Regex.Match(rest, @"^(\w+)\((.*)\)\s+= \?$") is { Success: true } q) lines.Add(new StraceLine(pid, q.Groups[1].Value, q.Groups[2].Value, "?"));
        }
        File.Delete(output);
        return lines;
    }

    private static string Ret(string straceResult) => straceResult.Split(' ')[0].Split('<')[0];

    [PrivilegedFact(Ptrace)]
    public void Launch_ReportsTheExecveAndMatchesStraceForTheSameFilter()
    {
        string filter = "execve,openat,read,close,write,getppid,exit_group";
        var options = new SyscallTraceOptions { Filter = SyscallFilter.Parse([filter], SyscallArchitectureX64.Instance), UseSeccomp = false };
        var events = Launch(["basic"], options);
        var ours = events.OfType<SyscallEvent>().ToList();
        var theirs = Strace(filter, ["basic"]);

        Assert.Equal("execve", ours[0].Name);
        Assert.Equal($"\"{Fixture}\"", ours[0].Arguments[0]);
        Assert.Equal($"[\"{Fixture}\", \"basic\"]", ours[0].Arguments[1]);
        Assert.Equal(0, ours[0].ReturnValue);

        Assert.Equal(theirs.Select(t => t.Name), ours.Select(o => o.Name));
        for (int i = 0; i < ours.Count; i++)
        {
            if (ours[i].Name != "getppid") // the parent differs: strace vs this test host
                Assert.Equal(Ret(theirs[i].Result), ours[i].ReturnValue is null ? "?" : Ret(ours[i].Result));
            if (ours[i].Name == "openat") Assert.Equal(theirs[i].Args.Split(", ")[1], ours[i].Arguments[1]); // the path
        }
        var enoent = Assert.Single(ours, e => e.Errno is not null && e.Arguments.ElementAtOrDefault(1) == "\"/nonexistent/pslinuxtrace\"");
        Assert.Equal("ENOENT", enoent.Errno);
        Assert.Equal(-2, enoent.ReturnValue);
        Assert.Equal("O_RDONLY|O_CLOEXEC", enoent.Arguments[2]);
        Assert.Equal($"AT_FDCWD<{Environment.CurrentDirectory}>", enoent.Arguments[0]);
        var passwd = Assert.Single(ours, e => e.Name == "openat" && e.Arguments[1] == "\"/etc/passwd\"");
        Assert.Equal($"{passwd.ReturnValue}</etc/passwd>", passwd.Result);
        var write = Assert.Single(ours, e => e.Name == "write" && e.Arguments[1] == "\"hello\\n\"");
        Assert.Equal(6, write.ReturnValue);
        Assert.Equal(3, events.OfType<ProcessExitEvent>().Single(e => !e.IsThread).ExitCode);
        Assert.Equal("?", ours[^1].Result);
        Assert.Equal("exit_group", ours[^1].Name);
        Assert.False(ours[^1].Unfinished);
    }

    [PrivilegedFact(Ptrace)]
    public void Decoding_WholeLinesMatchStraceY()
    {
        // Calls whose arguments and results are deterministic between two runs of the same program
        // (addresses from mmap differ with ASLR, so those calls are compared by name and flags only).
        string filter = "openat,read,close,write,mprotect,newfstatat,fstat,access,pread64,getppid";
        var options = new SyscallTraceOptions { Filter = SyscallFilter.Parse([filter], SyscallArchitectureX64.Instance) };
        var ours = Launch(["basic"], options).OfType<SyscallEvent>().ToList();
        var theirs = Strace(filter, ["basic"], yFlag: true);
        Assert.Equal(theirs.Count, ours.Count);
        var mismatches = new List<string>();
        for (int i = 0; i < ours.Count; i++)
        {
            if (ours[i].Name is "getppid") continue;
            if (ours[i].Name is "write") { Assert.Equal("\"hello\\n\", 6", theirs[i].Args[(theirs[i].Args.IndexOf(", ") + 2)..]); continue; } // stdout differs: a pipe there
            string mine = string.Join(", ", ours[i].Arguments), strace = theirs[i].Args;
            if (ours[i].Name is "mprotect") { mine = mine[mine.IndexOf(',')..]; strace = strace[strace.IndexOf(',')..]; }
            if (mine != strace || Ret(ours[i].Result) != Ret(theirs[i].Result)) mismatches.Add($"ours:   {ours[i].Line}\nstrace: {theirs[i].Name}({theirs[i].Args}) = {theirs[i].Result}");
        }
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
    }

    [PrivilegedFact(Ptrace)]
    public void Launch_FullTrace_SameSyscallNamesAsStrace()
    {
        var ours = Launch(["basic"]).OfType<SyscallEvent>().Select(e => e.Name).ToList();
        var theirs = Strace("all", ["basic"]).Select(t => t.Name).ToList();
        Assert.Equal(theirs, ours);
        Assert.Equal(ours.Count, ours.Count(n => SyscallTable.Number(n) >= 0));
    }

    [PrivilegedFact(Ptrace)]
    public void Seccomp_FilteredLaunch_MatchesStraceSeccompBpf()
    {
        var options = new SyscallTraceOptions { Filter = SyscallFilter.Parse(["openat", "getppid"], SyscallArchitectureX64.Instance) };
        var ours = Launch(["basic"], options).OfType<SyscallEvent>().ToList();
        var theirs = Strace("openat,getppid", ["basic"], seccomp: true);
        Assert.Equal(theirs.Select(t => (t.Name, t.Name == "getppid" ? "" : Ret(t.Result))), ours.Select(o => (o.Name, o.Name == "getppid" ? "" : Ret(o.Result))));
        Assert.Equal(3, ours.Count(o => o.Name == "getppid"));
    }

    [PrivilegedFact(Ptrace)]
    public void Seccomp_KeepsTheTraceeFromStoppingForOtherCalls()
    {
        // 20000 getppid unfiltered would be 40000 stops; with the filter on openat only, the program
        // runs as if untraced and we see only its few openat calls.
        var options = new SyscallTraceOptions { Filter = SyscallFilter.Parse(["openat"], SyscallArchitectureX64.Instance) };
        var events = Launch(["spin", "20000"], options);
        var calls = events.OfType<SyscallEvent>().ToList();
        Assert.NotEmpty(calls);
        Assert.All(calls, c => Assert.Equal("openat", c.Name));
        Assert.Equal(0, events.OfType<ProcessExitEvent>().Single().ExitCode);
    }

    [PrivilegedFact(Ptrace)]
    public void Threads_EightThreadsFollowed_AsStraceSeesThem()
    {
        var options = new SyscallTraceOptions { Filter = SyscallFilter.Parse(["getppid", "write"], SyscallArchitectureX64.Instance), UseSeccomp = false };
        var events = Launch(["threads", "8"], options);
        var calls = events.OfType<SyscallEvent>().ToList();
        var theirs = Strace("getppid,write", ["threads", "8"]);
        Assert.Equal(theirs.Count(t => t.Name == "getppid"), calls.Count(c => c.Name == "getppid"));
        Assert.Equal(40, calls.Count(c => c.Name == "getppid"));
        Assert.Equal(8, calls.Count(c => c.Name == "write"));
        var threads = events.OfType<ProcessStartEvent>().Where(s => s.Kind == ProcessStartKind.Thread).ToList();
        Assert.Equal(8, threads.Count);
        Assert.All(threads, t => Assert.Equal(events.OfType<ProcessStartEvent>().First().Pid, t.Pid));
        Assert.Equal(8, calls.Where(c => c.Name == "getppid").Select(c => c.Tid).Distinct().Count());
        Assert.Equal(8, events.OfType<ProcessExitEvent>().Count(e => e.IsThread));
    }

    [PrivilegedFact(Ptrace)]
    public void ForkExec_ChildFollowedThroughExec()
    {
        var options = new SyscallTraceOptions { Filter = SyscallFilter.Parse(["%process"], SyscallArchitectureX64.Instance), UseSeccomp = false };
        var events = Launch(["forkexec"], options);
        var calls = events.OfType<SyscallEvent>().ToList();
        var theirs = Strace("%process", ["forkexec"]);
        Assert.Equal(theirs.Select(t => t.Name).OrderBy(n => n), calls.Select(c => c.Name).OrderBy(n => n));
        var fork = Assert.Single(events.OfType<ProcessStartEvent>(), s => s.Kind is ProcessStartKind.Fork or ProcessStartKind.Clone);
        var childExec = Assert.Single(calls, c => c.Name == "execve" && c.Tid == fork.Tid);
        Assert.Equal("\"/bin/true\"", childExec.Arguments[0]);
        var wait = Assert.Single(calls, c => c.Name == "wait4");
        Assert.Equal(fork.Tid, wait.ReturnValue);
        Assert.Equal("[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]", wait.Arguments[1]);
        Assert.Contains(events.OfType<ProcessExitEvent>(), e => e.Tid == fork.Tid && e.ExitCode == 0);
        Assert.Contains(calls, c => c.Name == "clone" && c.Arguments[0].Contains("SIGCHLD"));
    }

    [PrivilegedFact(Ptrace)]
    public void NoFollow_StaysOnTheFirstProcess()
    {
        var options = new SyscallTraceOptions { FollowForks = false, Filter = SyscallFilter.Parse(["execve", "wait4"], SyscallArchitectureX64.Instance), UseSeccomp = false };
        var events = Launch(["forkexec"], options);
        var calls = events.OfType<SyscallEvent>().ToList();
        Assert.Single(calls, c => c.Name == "execve");
        Assert.Single(calls, c => c.Name == "wait4");
        Assert.DoesNotContain(events.OfType<ProcessStartEvent>(), s => s.Kind is ProcessStartKind.Fork or ProcessStartKind.Clone);
    }

    [PrivilegedFact(Ptrace)]
    public void Signals_AreReportedAndPassedOn()
    {
        var events = Launch(["signal"], new SyscallTraceOptions { Filter = SyscallFilter.Parse(["kill", "rt_sigaction"], SyscallArchitectureX64.Instance) });
        var sig = Assert.Single(events.OfType<SignalEvent>());
        Assert.Equal("SIGUSR1", sig.Signal);
        Assert.Equal("SI_USER", sig.Code);
        Assert.Equal(events.OfType<ProcessStartEvent>().First().Pid, sig.SenderPid);
        // The program exits 0 only if its handler ran: the signal was delivered, not swallowed.
        Assert.Equal(0, events.OfType<ProcessExitEvent>().Single().ExitCode);
        var kill = Assert.Single(events.OfType<SyscallEvent>(), e => e.Name == "kill");
        Assert.Equal("SIGUSR1", kill.Arguments[1]);
        Assert.Contains(events.OfType<SyscallEvent>(), e => e.Name == "rt_sigaction" && e.Arguments[0] == "SIGUSR1" && e.Arguments[1].Contains("SA_RESTART"));
    }

    [PrivilegedFact(Ptrace)]
    public void SigkillMidTrace_EndsWithKilledBySigkill()
    {
        var events = Launch(["kill"]);
        var exit = Assert.Single(events.OfType<ProcessExitEvent>());
        Assert.Equal("SIGKILL", exit.Signal);
        Assert.Null(exit.ExitCode);
    }

    [PrivilegedFact(Ptrace)]
    public void Attach_TracesAndDetachesLeavingTheProcessRunningUnharmed()
    {
        using var fixture = FixtureProcess.Start(Fixture, "wait");
        int pid = fixture.TargetPid;
        using var cts = new CancellationTokenSource();
        var reader = SyscallTracer.Attach(pid, new SyscallTraceOptions { Filter = SyscallFilter.Parse(["getppid", "nanosleep", "clock_nanosleep"], SyscallArchitectureX64.Instance) }, cancel: cts.Token);
        var seen = new List<TraceEvent>();
        foreach (var e in SyscallTracer.ReadAll(reader))
        {
            seen.Add(e);
            if (seen.OfType<SyscallEvent>().Count(s => s.Name == "getppid") >= 5) break;
        }
        Assert.NotEqual("0", ReadStatus(pid, "TracerPid:")); // traced while we read
        cts.Cancel();
        var rest = SyscallTracer.ReadAll(reader).ToList();
        Assert.True(WaitFor(() => ReadStatus(pid, "TracerPid:") == "0"), "the target is still traced");
        Assert.DoesNotContain(seen, e => e is SignalEvent); // PTRACE_SEIZE: no SIGSTOP seen by the target
        Assert.All(seen.OfType<SyscallEvent>().Where(s => s.Name == "getppid"), s => Assert.Equal(pid, s.Pid));
        string state = ReadStatus(pid, "State:");
        Assert.DoesNotContain("t (tracing stop)", state);
        Assert.DoesNotContain("T (stopped)", state);
        // Unharmed: a signal sent after the detach is handled, and it still answers.
        Tool.Check("kill", "-USR2", pid.ToString());
        Assert.True(WaitFor(() => fixture.Ask("count") == "count=1"));
        Quit(fixture);
    }

    [PrivilegedFact(Ptrace)]
    public void ExecveFromANonLeaderThread_IsReportedOnTheLeaderPid()
    {
        var events = Launch(["threadexec"], new SyscallTraceOptions { Filter = SyscallFilter.Parse(["execve", "exit_group"], SyscallArchitectureX64.Instance) });
        int pid = events.OfType<ProcessStartEvent>().First().Pid;
        var thread = Assert.Single(events.OfType<ProcessStartEvent>(), s => s.Kind == ProcessStartKind.Thread);
        var execs = events.OfType<SyscallEvent>().Where(e => e.Name == "execve").ToList();
        Assert.Equal(2, execs.Count); // the fixture's own, then the thread's
        Assert.Equal("\"/bin/true\"", execs[1].Arguments[0]);
        Assert.Equal(0, execs[1].ReturnValue);
        Assert.Equal(pid, execs[1].Tid); // after the exec the thread has the leader's tid, as strace shows it
        var exec = events.OfType<ProcessStartEvent>().Last(s => s.Kind == ProcessStartKind.Exec);
        Assert.Equal(thread.Tid, exec.ParentTid); // the former tid
        Assert.Equal("/usr/bin/true", exec.ExecutablePath);
        Assert.Equal(0, events.OfType<ProcessExitEvent>().Single(e => e.Tid == pid).ExitCode);
    }

    [PrivilegedFact(Ptrace)]
    public void GroupStop_IsListenedThrough_AndDetachLeavesAStoppedProcessStopped()
    {
        using var fixture = FixtureProcess.Start(Fixture, "wait");
        int pid = fixture.TargetPid;
        using var cts = new CancellationTokenSource();
        var reader = SyscallTracer.Attach(pid, new SyscallTraceOptions { Filter = SyscallFilter.Parse(["getppid"], SyscallArchitectureX64.Instance) }, cancel: cts.Token);
        var events = new List<TraceEvent>();
        var drain = Task.Run(() => { foreach (var e in SyscallTracer.ReadAll(reader)) lock (events) events.Add(e); });
        bool Seen(Func<TraceEvent, bool> p) { lock (events) return events.Any(p); }
        Assert.True(WaitFor(() => Seen(e => e is SyscallEvent)));
        // Stop it while traced: the tracer must PTRACE_LISTEN (not resume it), then SIGCONT resumes it.
        Tool.Check("kill", "-STOP", pid.ToString());
        Assert.True(WaitFor(() => Seen(e => e is SignalEvent { Signal: "SIGSTOP" })));
        Thread.Sleep(300);
        int before; lock (events) before = events.OfType<SyscallEvent>().Count();
        Thread.Sleep(300);
        int after; lock (events) after = events.OfType<SyscallEvent>().Count();
        Assert.Equal(before, after); // stopped: no calls
        Tool.Check("kill", "-CONT", pid.ToString());
        Assert.True(WaitFor(() => { lock (events) return events.OfType<SyscallEvent>().Count() > after; }));
        // Now stop it again and detach while it is stopped: it must stay stopped, untraced.
        Tool.Check("kill", "-STOP", pid.ToString());
        Assert.True(WaitFor(() => { lock (events) return events.OfType<SignalEvent>().Count(e => e.Signal == "SIGSTOP") == 2; }));
        Thread.Sleep(300); // into the group-stop
        cts.Cancel();
        Assert.True(drain.Wait(Generous));
        Assert.True(WaitFor(() => ReadStatus(pid, "TracerPid:") == "0"));
        Assert.StartsWith("T", ReadStatus(pid, "State:"));
        Tool.Check("kill", "-CONT", pid.ToString());
        Assert.Equal("count=0", fixture.Ask("count"));
        Quit(fixture);
    }

    [PrivilegedFact(Ptrace)]
    public void Attach_TimeoutDetaches()
    {
        using var fixture = FixtureProcess.Start(Fixture, "wait");
        int pid = fixture.TargetPid;
        var reader = SyscallTracer.Attach(pid, new SyscallTraceOptions { Timeout = TimeSpan.FromSeconds(3) });
        var events = SyscallTracer.ReadAll(reader).ToList();
        Assert.Contains(events, e => e is SyscallEvent { Name: "getppid" });
        Assert.Contains(events, e => e is ProcessStartEvent { Kind: ProcessStartKind.Attach });
        Assert.True(WaitFor(() => ReadStatus(pid, "TracerPid:") == "0"));
        Assert.Equal("count=0", fixture.Ask("count"));
        Quit(fixture);
    }

    [PrivilegedFact(Ptrace)]
    public void Detach_ReportsTheBlockedCallAsUnfinished_AndTheCallCarriesOn()
    {
        using var fixture = FixtureProcess.Start(Fixture, "block");
        int pid = fixture.TargetPid;
        Assert.True(WaitFor(() => File.ReadAllText($"/proc/{pid}/wchan") is "pipe_read" or "wait_woken" or "do_select" || File.ReadAllText($"/proc/{pid}/syscall").StartsWith("0 ")));
        var events = SyscallTracer.ReadAll(SyscallTracer.Attach(pid, new SyscallTraceOptions { Timeout = TimeSpan.FromSeconds(1) })).ToList();
        // Interrupted by PTRACE_INTERRUPT, the read restarts inside the kernel and is seen from its new entry.
        var read = Assert.Single(events.OfType<SyscallEvent>(), e => e.Name == "read");
        Assert.True(read.Unfinished);
        Assert.Null(read.ReturnValue);
        Assert.Equal("?", read.Result);
        Assert.StartsWith("0<", read.Arguments[0]);
        Assert.True(WaitFor(() => ReadStatus(pid, "TracerPid:") == "0"));
        Assert.Equal("got", fixture.Ask("hello")); // the read still works after the detach
        Quit(fixture);
    }

    [Fact]
    public void Quote_EscapesLikeStrace()
    {
        Assert.Equal("\"a\\n\\t\\\"\\\\\"", SyscallDecoder.Quote("a\n\t\"\\"u8));
        Assert.Equal("\"\\177ELF\\2\\1\\1\\0\"", SyscallDecoder.Quote([0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0]));
        Assert.Equal("\"\\0001\"", SyscallDecoder.Quote([0, (byte)'1']));
    }

    [PrivilegedFact(Ptrace)]
    public void Attach_NonexistentPid_IsProcessNotFound()
    {
        Assert.Throws<ProcessNotFoundException>(() => SyscallTracer.Attach(int.MaxValue - 7, new SyscallTraceOptions()));
    }

    [PrivilegedFact(Ptrace)]
    public void Attach_Zombie_IsProcessNotFoundNotPermissionDenied()
    {
        using var parent = FixtureProcess.Start(Fixture, "zombie"); // its child exits and stays unreaped until "quit"
        int zombie = parent.TargetPid;
        Assert.True(WaitFor(() => ReadStatus(zombie, "State:").StartsWith('Z')));
        var ex = Assert.Throws<ProcessNotFoundException>(() => SyscallTracer.Attach(zombie, new SyscallTraceOptions()));
        Assert.Contains("zombie", ex.Message);
        Quit(parent);
    }

    [PrivilegedFact(Ptrace)]
    public void Attach_AlreadyTraced_IsTargetBusy()
    {
        using var fixture = FixtureProcess.Start(Fixture, "wait");
        int pid = fixture.TargetPid;
        var first = SyscallTracer.Attach(pid, new SyscallTraceOptions { Timeout = TimeSpan.FromSeconds(20) });
        Assert.True(first.WaitToReadAsync().AsTask().Wait(Generous)); // attached
        var second = SyscallTracer.Attach(pid, new SyscallTraceOptions());
        var ex = Assert.Throws<TargetBusyException>(() => SyscallTracer.ReadAll(second).ToList());
        // TracerPid names the tracing thread; the error names its process, which a user can find: the
        // tracer process of the first trace, a child of this one.
        Assert.NotNull(ex.OwnerPid);
        Assert.Equal(Environment.ProcessId, int.Parse(ReadStatus(ex.OwnerPid!.Value, "PPid:").Trim()));
        Quit(fixture);
        SyscallTracer.ReadAll(first).ToList(); // the first trace ends with the process
    }

    [PrivilegedFact(Ptrace)]
    public void Cancel_WhileLaunched_KillsTheTree()
    {
        using var cts = new CancellationTokenSource();
        var reader = SyscallTracer.Launch(Fixture, ["spin", "100000000"], new SyscallTraceOptions(), cancel: cts.Token, stdoutPath: "/dev/null");
        int pid = 0;
        foreach (var e in SyscallTracer.ReadAll(reader))
        {
            pid = e.Pid;
            if (e is SyscallEvent { Name: "getppid" }) break;
        }
        cts.Cancel();
        _ = SyscallTracer.ReadAll(reader).ToList();
        Assert.True(WaitFor(() => !Directory.Exists($"/proc/{pid}")), $"process {pid} survived");
    }

    [PrivilegedFact(Ptrace)]
    public void Launch_InAWorkingDirectory_FindsTheProgramThereAndStartsInIt()
    {
        string dir = Directory.CreateTempSubdirectory("pslt cwd 'quoted' ").FullName;
        try
        {
            File.Copy(Fixture, Path.Combine(dir, "app"));
            var reader = SyscallTracer.Launch("./app", ["basic"], new SyscallTraceOptions { WorkingDirectory = dir, Timeout = Generous }, stdoutPath: "/dev/null");
            var events = SyscallTracer.ReadAll(reader).ToList();
            Assert.Equal(Path.Combine(dir, "app"), events.OfType<ProcessStartEvent>().First().ExecutablePath);
            // strace -y, run in the same directory, shows the same AT_FDCWD<dir>.
            var theirs = Tool.Run("strace", ["-y", "-qq", "-e", "trace=openat", "./app", "basic"], workingDirectory: dir).StdErr;
            string expected = $"AT_FDCWD<{dir}>";
            Assert.Contains(expected + ", \"/nonexistent/pslinuxtrace\"", theirs);
            var miss = Assert.Single(events.OfType<SyscallEvent>(), e => e.Name == "openat" && e.Arguments[1] == "\"/nonexistent/pslinuxtrace\"");
            Assert.Equal(expected, miss.Arguments[0]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [PrivilegedFact(Ptrace)]
    public void Summary_CountsLikeStraceC()
    {
        var events = Launch(["basic"], new SyscallTraceOptions { DecodeArguments = false });
        var builder = new SyscallSummaryBuilder();
        foreach (var e in events.OfType<SyscallEvent>()) builder.Add(e);
        var rows = builder.Build();
        var getppid = Assert.Single(rows, r => r.Name == "getppid");
        Assert.Equal(3, getppid.Calls);
        Assert.True(Assert.Single(rows, r => r.Name == "openat").Errors >= 1);
        Assert.Equal(events.OfType<SyscallEvent>().Count(), rows.Sum(r => r.Calls));
    }

    [Fact]
    public void Filter_NamesWildcardsAndClasses()
    {
        var arch = SyscallArchitectureX64.Instance;
        var f = SyscallFilter.Parse(["open*", "%network", "getppid"], arch);
        Assert.True(f.Matches(arch.Number("openat")));
        Assert.True(f.Matches(arch.Number("open")));
        Assert.True(f.Matches(arch.Number("connect")));
        Assert.True(f.Matches(arch.Number("getppid")));
        Assert.False(f.Matches(arch.Number("read")));
        Assert.Throws<ArgumentException>(() => SyscallFilter.Parse(["no_such_call"], arch));
        Assert.Throws<ArgumentException>(() => SyscallFilter.Parse(["%nonsense"], arch));
        var not = SyscallFilter.Parse(["!getppid"], arch);
        Assert.False(not.Matches(arch.Number("getppid")));
        Assert.True(not.Matches(arch.Number("read")));
    }

    [Fact]
    public void SyscallTable_EveryNumberUpToTheMaximumHasAName()
    {
        var arch = SyscallArchitectureX64.Instance;
        // The 335-423 gap is unassigned on x86_64; everything else has a name from syscall_64.tbl.
        for (int n = 0; n <= arch.MaxNumber; n++)
            if (n is < 335 or > 423) Assert.False(arch.Name(n).StartsWith("syscall_"), $"number {n}");
        Assert.Equal(257, arch.Number("openat"));
        Assert.Equal(435, arch.Number("clone3"));
    }

    /// <summary>Ends a fixture by its own protocol, so its parent reaps it (orphans would stay zombies here).</summary>
    private static void Quit(FixtureProcess f)
    {
        try
        {
            f.Process.StandardInput.WriteLine("quit");
            f.Process.StandardInput.Close();
            f.Process.WaitForExit(10000);
        }
        catch (IOException) { }
    }

    private static string ReadStatus(int pid, string key) =>
        File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key))[key.Length..].Trim();

    private static bool WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            try { if (condition()) return true; }
            catch (InvalidOperationException) { }
            Thread.Sleep(20);
        }
        return false;
    }
}
