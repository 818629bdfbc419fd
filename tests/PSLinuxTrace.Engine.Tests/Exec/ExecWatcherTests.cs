using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Exec;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Exec;

/// <summary>
/// Watch-Exec's engine against the real kernel: real execs by real processes, checked against what
/// the test itself passed (pid from the process it started, argv it built) and against /proc.
/// One collection: the watchers must not run in parallel with the cleanup test.
/// </summary>
[Collection("Exec")]
public sealed class ExecWatcherTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    /// <summary>Collects events until <paramref name="done"/> says so or the time runs out.</summary>
    internal static List<ExecEvent> Collect(ExecWatcher w, Func<List<ExecEvent>, bool> done, TimeSpan? timeout = null)
    {
        var list = new List<ExecEvent>();
        ChannelReader<ExecEvent> r = w.Start();
        var deadline = DateTime.UtcNow + (timeout ?? Generous);
        while (DateTime.UtcNow < deadline && !done(list))
        {
            while (r.TryRead(out ExecEvent? e)) list.Add(e);
            if (done(list)) break;
            try { r.WaitToReadAsync().AsTask().Wait(200); } catch (AggregateException) { break; }
            if (r.Completion.IsCompleted && !r.TryPeek(out _)) break;
        }
        return list;
    }

    /// <summary>Runs a program to completion with Process (fork+execve from this process).</summary>
    internal static int RunToExit(string file, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var kv in env) psi.Environment[kv.Key] = kv.Value;
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(60_000));
        return p.Id;
    }

    private static ExecWatcher OpenForChildren(ExecWatchOptions? o = null) =>
        ExecWatcher.Open((o ?? new ExecWatchOptions()) with { ParentId = Environment.ProcessId }, NullLogger.Instance);

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void KnownCommandHasItsPidArgvParentAndResult()
    {
        using var w = OpenForChildren();
        string marker = "pslt-" + Guid.NewGuid().ToString("N");
        string[] args = [marker, "two words", "", "last"];
        int pid = RunToExit("/bin/echo", args);
        var events = Collect(w, l => l.Any(e => e.Pid == pid));
        ExecEvent ev = Assert.Single(events, e => e.Pid == pid);
        Assert.Equal("/bin/echo", ev.Filename);
        Assert.Equal(["/bin/echo", .. args], ev.Argv);
        Assert.False(ev.Truncated);
        Assert.Equal("0", ev.Result);
        Assert.Equal(0, ev.ErrorCode);
        Assert.Equal(Environment.ProcessId, ev.ParentId);
        Assert.Equal(pid, ev.Tid);
        Assert.Equal(ExecSyscall.Execve, ev.Syscall);
        Assert.Equal(0u, ev.UserId);
        Assert.Equal(ExecWatcher.PidNamespaceOf(Environment.ProcessId), ev.PidNamespace);
        Assert.True(ev.CgroupId != 0);
        Assert.True(Math.Abs((ev.Timestamp - DateTime.Now).TotalMinutes) < 5, $"timestamp {ev.Timestamp:o} is not now");
        Assert.Null(ev.Environment);
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void HundredArgumentsEmptyArgumentsAndA3KiBArgumentArriveWhole()
    {
        using var w = OpenForChildren();
        var args = new List<string> { "pslt-" + Guid.NewGuid().ToString("N"), "", new string('x', 3 * 1024), "" };
        for (int i = 0; args.Count < 100; i++) args.Add(i % 7 == 0 ? "" : $"arg-{i}-{new string('y', i % 13)}");
        int pid = RunToExit("/bin/true", args);
        ExecEvent ev = Assert.Single(Collect(w, l => l.Any(e => e.Pid == pid)), e => e.Pid == pid);
        Assert.Equal(["/bin/true", .. args], ev.Argv);
        Assert.Equal(101, ev.Argv.Length);
        Assert.False(ev.Truncated);
        Assert.Equal("0", ev.Result);
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void MoreThanTheLimitsIsMarkedTruncatedAndKeepsTheFirstArguments()
    {
        using var w = OpenForChildren();
        var many = Enumerable.Range(0, 300).Select(i => $"m{i}").ToList();        // more than 256 strings
        var big = Enumerable.Range(0, 10).Select(i => new string((char)('a' + i), 4000)).ToList();   // 40 KB > 32 KiB
        int pid1 = RunToExit("/bin/true", many);
        int pid2 = RunToExit("/bin/true", big);
        var events = Collect(w, l => l.Any(e => e.Pid == pid1) && l.Any(e => e.Pid == pid2));
        ExecEvent e1 = Assert.Single(events, e => e.Pid == pid1);
        Assert.True(e1.Truncated);
        Assert.Equal(256, e1.Argv.Length);
        Assert.Equal(["/bin/true", .. many.Take(255)], e1.Argv);
        ExecEvent e2 = Assert.Single(events, e => e.Pid == pid2);
        Assert.True(e2.Truncated);
        Assert.Equal("/bin/true", e2.Argv[0]);
        Assert.Equal(big.Take(e2.Argv.Length - 2), e2.Argv.Skip(1).Take(e2.Argv.Length - 2));
        Assert.True(e2.Argv.Sum(a => a.Length + 1) <= 32 * 1024);
        Assert.True(e2.Argv.Sum(a => a.Length + 1) > 28 * 1024);
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void FailingExecOfAMissingPathHasResultENOENT()
    {
        using var w = OpenForChildren();
        string missing = "/nonexistent-pslt-" + Guid.NewGuid().ToString("N");
        // exec: the shell itself makes the call (a plain command would run in a forked child).
        int sh = RunToExit("/bin/sh", ["-c", "exec " + missing + " some-arg 2>/dev/null"]);
        ExecEvent ev = Assert.Single(Collect(w, l => l.Any(e => e.Filename == missing)), e => e.Filename == missing);
        Assert.Equal(sh, ev.Pid);
        Assert.Equal("ENOENT", ev.Result);
        Assert.Equal(2, ev.ErrorCode);
        Assert.Equal([missing, "some-arg"], ev.Argv);
        Assert.Equal("sh", ev.Comm);
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void ExecveatIsSeenWithItsDirectoryFdAndRelativeName()
    {
        string helper = Fixtures.Build("exec_helper");
        using var w = OpenForChildren();
        string marker = "pslt-" + Guid.NewGuid().ToString("N");
        int pid = RunToExit(helper, ["execveat", "/bin", "true", marker]);
        int pid2 = RunToExit(helper, ["execveat", "/bin", "no-such-program-pslt", marker]);
        var events = Collect(w, l => l.Count(e => e.Syscall == ExecSyscall.Execveat) >= 2);
        ExecEvent ok = Assert.Single(events, e => e.Pid == pid && e.Syscall == ExecSyscall.Execveat);
        Assert.Equal("true", ok.Filename);
        Assert.Equal(["true", marker], ok.Argv);
        Assert.True(ok.DirectoryFd >= 3, $"dirfd {ok.DirectoryFd}");
        Assert.Equal("0", ok.Result);
        Assert.Equal("exec_helper", ok.Comm);
        ExecEvent bad = Assert.Single(events, e => e.Pid == pid2 && e.Syscall == ExecSyscall.Execveat);
        Assert.Equal("no-such-program-pslt", bad.Filename);
        Assert.Equal("ENOENT", bad.Result);
    }

    /// <summary>
    /// A successful exec by a thread that is not the leader returns in the leader's tid (the kernel's
    /// de_thread), so the exit record must still be joined to the entry by the process id.
    /// </summary>
    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void ExecFromASecondThreadIsJoinedToItsResult()
    {
        string helper = Fixtures.Build("exec_helper");
        using var w = OpenForChildren();
        string marker = "pslt-thread-" + Guid.NewGuid().ToString("N");
        var psi = new ProcessStartInfo(helper) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (string a in new[] { "threadexec", "/bin/echo", marker }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(60_000));
        int tid = int.Parse(output.Split('\n')[0]["tid=".Length..]);
        Assert.Contains(marker, output);   // echo ran
        Predicate<ExecEvent> isEcho = e => e.Filename == "/bin/echo" && e.Argv.Contains(marker);   // not the helper's own exec
        ExecEvent ev = Assert.Single(Collect(w, l => l.Exists(isEcho)), isEcho);
        Assert.Equal(["/bin/echo", marker], ev.Argv);
        Assert.Equal(p.Id, ev.Pid);
        Assert.Equal(tid, ev.Tid);
        Assert.NotEqual(ev.Pid, ev.Tid);
        Assert.Equal("0", ev.Result);
    }

    /// <summary>
    /// An exec whose exit never comes (exec_helper blockedexec: an argv string on a page userfaultfd never
    /// fills) is written when it is due, result unknown, and the execs after it wait for it: time order.
    /// </summary>
    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void AnExecThatNeverReturnsIsWrittenWhenDueAndTheLaterOnesAfterIt()
    {
        string helper = Fixtures.Build("exec_helper");
        using var w = OpenForChildren(new ExecWatchOptions { Name = ["true"] });
        string marker = "pslt-blocked-" + Guid.NewGuid().ToString("N");
        var blocked = Process.Start(new ProcessStartInfo(helper, ["blockedexec", "/bin/true", marker]) { UseShellExecute = false })!;
        try
        {
            Assert.True(WaitUntilBlocked(blocked.Id), "the helper's execve did not block in handle_userfault");
            RunToExit("/bin/true", [marker, "after"]);
            var watch = Stopwatch.StartNew();
            var events = Collect(w, l => l.Count(e => e.Argv.Contains(marker)) >= 2, TimeSpan.FromSeconds(30)).Where(e => e.Argv.Contains(marker)).ToList();
            Assert.Equal(2, events.Count);
            Assert.Equal(blocked.Id, events[0].Pid);   // the blocked one first: it began first
            Assert.Null(events[0].Result);
            Assert.Null(events[0].ErrorCode);
            Assert.True(events[0].Truncated);            // its last string could not be read
            Assert.Equal([ "/bin/true", marker, "after" ], events[1].Argv);
            Assert.Equal("0", events[1].Result);
            Assert.True(events[0].Timestamp < events[1].Timestamp);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"written after {watch.Elapsed}, not when due");
        }
        finally
        {
            blocked.Kill();
            blocked.WaitForExit();
        }
    }

    private static bool WaitUntilBlocked(int pid)
    {
        for (int i = 0; i < 500; i++)
        {
            try { if (File.ReadAllText($"/proc/{pid}/wchan") == "handle_userfault") return true; }
            catch (IOException) { return false; }
            Thread.Sleep(10);
        }
        return false;
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void BytesThatAreNotUtf8AreShownAsEscapes()
    {
        string helper = Fixtures.Build("exec_helper");
        using var w = OpenForChildren();
        int pid = RunToExit(helper, ["badutf8", "/bin/true"]);
        ExecEvent ev = Assert.Single(Collect(w, l => l.Any(e => e.Pid == pid && e.Filename == "/bin/true")), e => e.Pid == pid && e.Filename == "/bin/true");
        Assert.Equal(["/bin/true", "\\xff\\xfe-ok", "caf\u00e9"], ev.Argv);
        Assert.False(ev.Truncated);
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void IncludeEnvironmentCapturesEnvp()
    {
        using var w = OpenForChildren(new ExecWatchOptions { IncludeEnvironment = true });
        string value = Guid.NewGuid().ToString("N");
        int pid = RunToExit("/bin/true", ["env-test"], new Dictionary<string, string> { ["PSLT_MARK"] = value });
        ExecEvent ev = Assert.Single(Collect(w, l => l.Any(e => e.Pid == pid)), e => e.Pid == pid);
        Assert.NotNull(ev.Environment);
        Assert.Contains("PSLT_MARK=" + value, ev.Environment!);
        Assert.Equal(["/bin/true", "env-test"], ev.Argv);
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN (unshare)")]
    public void PidNamespaceFilterKeepsOnlyExecsInThatNamespace()
    {
        string marker = "pslt-ns-" + Guid.NewGuid().ToString("N");
        var psi = new ProcessStartInfo("unshare") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true };
        foreach (string a in new[] { "-p", "-f", "/bin/sh", "-c", $"read x; /bin/true {marker}" }) psi.ArgumentList.Add(a);
        using var outer = Process.Start(psi)!;
        try
        {
            int inner = 0;
            var deadline = DateTime.UtcNow + Generous;
            while (inner == 0 && DateTime.UtcNow < deadline)
            {
                string children = File.Exists($"/proc/{outer.Id}/task/{outer.Id}/children") ? File.ReadAllText($"/proc/{outer.Id}/task/{outer.Id}/children") : "";
                inner = children.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).FirstOrDefault();
                if (inner == 0) Thread.Sleep(50);
            }
            Assert.NotEqual(0, inner);
            uint ns = ExecWatcher.PidNamespaceOf(inner);
            Assert.NotEqual(ExecWatcher.PidNamespaceOf(Environment.ProcessId), ns);
            using var w = ExecWatcher.Open(new ExecWatchOptions { PidNamespace = ns }, NullLogger.Instance);
            RunToExit("/bin/true", ["outside-" + marker]);
            outer.StandardInput.WriteLine("go");
            outer.StandardInput.Flush();
            var events = Collect(w, l => l.Any(e => e.Argv.Contains(marker)));
            ExecEvent ev = Assert.Single(events, e => e.Argv.Contains(marker));
            Assert.Equal(inner, ev.ParentId);
            Assert.Equal("0", ev.Result);
            Assert.DoesNotContain(events, e => e.Argv.Contains("outside-" + marker));
            Assert.All(events, e => Assert.Equal(ns, e.PidNamespace));
            Assert.True(outer.WaitForExit(60_000));
        }
        finally
        {
            if (!outer.HasExited) outer.Kill(entireProcessTree: true);
            outer.WaitForExit(10_000);
        }
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void ExecStormOf10000HasNoLostEventsAtTheDefaultBufferSize()
    {
        const int N = 10_000;
        string helper = Fixtures.Build("exec_helper");
        string marker = "pslt-storm-" + Guid.NewGuid().ToString("N");
        // No kernel filter: every exec on the machine goes through the ring while the storm runs.
        using var w = ExecWatcher.Open(new ExecWatchOptions(), NullLogger.Instance);
        var reader = w.Start();
        var psi = new ProcessStartInfo(helper) { UseShellExecute = false };
        foreach (string a in new[] { "storm", N.ToString(), "/bin/true", marker }) psi.ArgumentList.Add(a);
        using var storm = Process.Start(psi)!;
        var seen = new HashSet<int>();
        int other = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        DateTime? exitedAt = null;
        while (seen.Count < N && DateTime.UtcNow < deadline)
        {
            while (reader.TryRead(out ExecEvent? e))
            {
                if (e.Argv.Length == 3 && e.Argv[1] == marker)
                {
                    Assert.Equal(storm.Id, e.ParentId);
                    Assert.True(e.Result == "0", $"exec {e.Argv[2]} (pid {e.Pid}) has Result '{e.Result ?? "null"}'; lost so far {w.LostEvents}");
                    Assert.True(seen.Add(int.Parse(e.Argv[2])), $"duplicate {e.Argv[2]}");
                }
                else other++;
            }
            if (storm.HasExited) exitedAt ??= DateTime.UtcNow;
            if (exitedAt is { } t && DateTime.UtcNow - t > TimeSpan.FromSeconds(10)) break;
            reader.WaitToReadAsync().AsTask().Wait(200);
        }
        Assert.True(storm.WaitForExit(60_000));
        Assert.Equal(0, storm.ExitCode);
        Assert.Equal(0UL, w.LostEvents);
        Assert.Equal(N, seen.Count);
        Assert.Equal(Enumerable.Range(0, N), seen.Order());
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON, bpftool")]
    public void DisposeLeavesNoProgramMapOrDescriptorBehind()
    {
        static string[] BpfFds() => Directory.GetFiles("/proc/self/fd").Select(f =>
        {
            try { return new FileInfo(f).LinkTarget ?? ""; } catch (IOException) { return ""; }
        }).Where(t => t.Contains("bpf-") || t.Contains("perf_event")).ToArray();
        static int BpfMappings() => File.ReadLines("/proc/self/maps").Count(l => l.Contains("bpf-map") || l.Contains("bpf_ringbuf"));

        string[] fdsBefore = BpfFds();
        int mapsBefore = BpfMappings();
        IReadOnlyList<uint> ids;
        using (var w = OpenForChildren())
        {
            ids = w.ProgramIds;
            Assert.Equal(4, ids.Count);
            Assert.True(BpfFds().Length >= fdsBefore.Length + 4 + 4 + 4);   // 4 maps, 4 programs, 4 perf events
            // bpftool sees our programs while the watch runs: tracepoint programs with our names.
            string shown = Tool.Check("bpftool", "prog", "show", "id", ids[0].ToString());
            Assert.Contains("tracepoint", shown);
            Assert.Contains("pslt_", shown);
            int pid = RunToExit("/bin/true", ["cleanup"]);
            Assert.Contains(Collect(w, l => l.Any(e => e.Pid == pid)), e => e.Pid == pid);
        }
        Assert.Equal(fdsBefore.Length, BpfFds().Length);
        Assert.Equal(mapsBefore, BpfMappings());
        // The kernel frees a program once its last reference is gone; allow for the RCU grace period.
        foreach (uint id in ids)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (Tool.Run("bpftool", ["prog", "show", "id", id.ToString()]).ExitCode == 0 && DateTime.UtcNow < deadline) Thread.Sleep(100);
            Assert.NotEqual(0, Tool.Run("bpftool", ["prog", "show", "id", id.ToString()]).ExitCode);
        }
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON, strace")]
    public void PidsAndArgvMatchWhatStraceSees()
    {
        string helper = Fixtures.Build("exec_helper");
        string marker = "pslt-strace-" + Guid.NewGuid().ToString("N");
        string log = Path.Combine(Fixtures.ScratchDirectory, marker + ".strace");
        using var w = ExecWatcher.Open(new ExecWatchOptions { Name = ["echo"] }, NullLogger.Instance);
        Tool.Check("strace", "-f", "-qq", "-s", "256", "-e", "trace=execve", "-o", log, helper, "storm", "20", "/bin/echo", marker);
        var ours = Collect(w, l => l.Count(e => e.Argv.Contains(marker)) >= 20).Where(e => e.Argv.Contains(marker)).ToList();
        // strace -f -o: "PID execve("/bin/echo", ["/bin/echo", "MARKER", "7"], 0x... /* N vars */) = 0"
        var rx = new System.Text.RegularExpressions.Regex(@"^(\d+)\s+execve\(""/bin/echo"", \[""/bin/echo"", """ + marker + @""", ""(\d+)""\].*= 0$");
        var theirs = File.ReadLines(log).Select(l => rx.Match(l)).Where(m => m.Success)
            .Select(m => (Pid: int.Parse(m.Groups[1].Value), Index: m.Groups[2].Value)).ToList();
        Assert.Equal(20, theirs.Count);
        Assert.Equal(theirs.OrderBy(t => t.Pid), ours.Select(e => (e.Pid, Index: e.Argv[2])).OrderBy(t => t.Pid));
        Assert.All(ours, e => Assert.Equal("0", e.Result));
    }

    [PrivilegedFact("CAP_BPF")]
    public void AProgramTheVerifierRejectsThrowsWithTheVerifierLog()
    {
        // r0 = *(u64 *)(r1 + 0x7000); exit  -- reads past PERF_MAX_TRACE_SIZE (8 KiB), outside any tracepoint context
        byte[] insns = [0x79, 0x10, 0x00, 0x70, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
        var ex = Assert.Throws<BadInputFormatException>(() => BpfProgram.Load(PSLinuxTrace.Engine.Interop.Bpf.BPF_PROG_TYPE_TRACEPOINT, insns, "GPL", "pslt_bad"));
        Assert.Contains("Verifier log", ex.Message);
        Assert.Contains("bpf_context", ex.Message);
    }
}
