using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Exec;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;
using static PSLinuxTrace.Engine.Tests.Exec.ExecWatcherTests;

namespace PSLinuxTrace.Engine.Tests.Exec;

/// <summary>Filters, limits and lost-event accounting of the exec watcher, against the real kernel.</summary>
[Collection("Exec")]
public sealed class ExecWatcherOptionTests
{
    private sealed class ListLogger : ILogger
    {
        public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Enqueue((logLevel, formatter(state, exception)));
    }

    /// <summary>Reads until the watch completes (the reader's Completion finishes only once it is drained).</summary>
    private static List<ExecEvent> ReadToEnd(System.Threading.Channels.ChannelReader<ExecEvent> reader, TimeSpan timeout)
    {
        var got = new List<ExecEvent>();
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !reader.Completion.IsCompleted)
        {
            while (reader.TryRead(out ExecEvent? e)) got.Add(e);
            try { reader.WaitToReadAsync().AsTask().Wait(200); } catch (AggregateException) { }
        }
        return got;
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void ARingTooSmallCountsLostEventsAndWarns()
    {
        // An exec with 6 KB of arguments makes a record larger than a 4 KiB ring can ever hold:
        // every such exec must show up in the kernel's lost counter and in a warning, never silently.
        var log = new ListLogger();
        using var w = ExecWatcher.Open(new ExecWatchOptions { ParentId = Environment.ProcessId, BufferSize = 4096 }, log);
        var reader = w.Start();
        int[] pids = Enumerable.Range(0, 3).Select(_ => RunToExit("/bin/true", ["lost", new string('l', 6000)])).ToArray();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (w.LostEvents < 3 && DateTime.UtcNow < deadline) Thread.Sleep(100);
        Assert.True(w.LostEvents >= 3, $"lost {w.LostEvents}");
        while (!log.Entries.Any(e => e.Level == LogLevel.Warning) && DateTime.UtcNow < deadline) Thread.Sleep(100);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("lost") && e.Message.Contains("-BufferSize"));
        w.Stop();
        var got = ReadToEnd(reader, TimeSpan.FromSeconds(60));
        Assert.DoesNotContain(got, e => pids.Contains(e.Pid));
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON, setpriv")]
    public void UserIdFilterKeepsOnlyThatUser()
    {
        string marker = "pslt-uid-" + Guid.NewGuid().ToString("N");
        using var w = ExecWatcher.Open(new ExecWatchOptions { UserId = 54321 }, NullLogger.Instance);
        RunToExit("/bin/true", ["root-" + marker]);
        RunToExit("setpriv", ["--reuid=54321", "--regid=54322", "--clear-groups", "/bin/true", marker]);
        var events = Collect(w, l => l.Any(e => e.Argv.Contains(marker)));
        ExecEvent ev = Assert.Single(events, e => e.Argv.Contains(marker));
        Assert.Equal(54321u, ev.UserId);
        Assert.Equal(54322u, ev.GroupId);
        Assert.Equal("setpriv", ev.Comm);
        Assert.All(events, e => Assert.Equal(54321u, e.UserId));
        Assert.DoesNotContain(events, e => e.Argv.Contains("root-" + marker));
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void CountEndsTheWatchAndNameFiltersOnTheFileName()
    {
        using var w = ExecWatcher.Open(new ExecWatchOptions { ParentId = Environment.ProcessId, Count = 2, Name = ["ech?"] }, NullLogger.Instance);
        var reader = w.Start();
        RunToExit("/bin/true", ["not-echo"]);
        for (int i = 0; i < 4; i++) RunToExit("/bin/echo", [$"echo-{i}"]);
        var got = ReadToEnd(reader, TimeSpan.FromSeconds(60));
        Assert.True(reader.Completion.IsCompleted, "the watch did not end after -Count events");
        Assert.Equal(2, got.Count);
        Assert.All(got, e => Assert.Equal("/bin/echo", e.Filename));
    }

    [PrivilegedFact("CAP_BPF, CAP_PERFMON")]
    public void TimeoutEndsTheWatch()
    {
        using var w = ExecWatcher.Open(new ExecWatchOptions { ParentId = Environment.ProcessId, Timeout = TimeSpan.FromSeconds(1) }, NullLogger.Instance);
        var sw = Stopwatch.StartNew();
        var reader = w.Start();
        ReadToEnd(reader, TimeSpan.FromSeconds(60));
        Assert.True(reader.Completion.IsCompleted, "the watch did not end after -Timeout");
        Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void EpermFromBpfNamesTheMissingCapability()
    {
        var ex = Assert.IsType<TargetPermissionDeniedException>(BpfMap.BpfError(PSLinuxTrace.Engine.Interop.Errno.EPERM, "BPF_PROG_LOAD"));
        Assert.Equal("CAP_BPF", ex.MissingCapability);
        Assert.Contains("CAP_BPF", ex.Message);
    }

    [Fact]
    public void BadOptionsAreArgumentErrors()
    {
        Assert.Throws<ArgumentException>(() => ExecWatcher.Open(new ExecWatchOptions { BufferSize = 5000 }, NullLogger.Instance));
        Assert.Throws<ProcessNotFoundException>(() => ExecWatcher.PidNamespaceOf(int.MaxValue));
    }

    /// <summary>exec.bpf.c reads the syscall tracepoints' context at fixed offsets; tracefs must agree.</summary>
    [PrivilegedFact("tracefs")]
    public void TracepointContextLayoutIsWhatTheProgramReads()
    {
        var expected = new Dictionary<string, (string Field, int Offset)[]>
        {
            ["sys_enter_execve"] = [("filename", 16), ("argv", 24), ("envp", 32)],
            ["sys_enter_execveat"] = [("fd", 16), ("filename", 24), ("argv", 32), ("envp", 40), ("flags", 48)],
            ["sys_exit_execve"] = [("ret", 16)],
            ["sys_exit_execveat"] = [("ret", 16)],
        };
        foreach (var (tp, fields) in expected)
        {
            string format = File.ReadAllText(Path.Combine(Tracefs.Root(), "events", "syscalls", tp, "format"));
            foreach (var (field, offset) in fields)
            {
                var m = Regex.Match(format, @"field:[^;]*\b" + field + @";\s*offset:(\d+);\s*size:(\d+);");
                Assert.True(m.Success, $"{tp} has no field {field}");
                Assert.Equal(offset, int.Parse(m.Groups[1].Value));
                Assert.Equal(8, int.Parse(m.Groups[2].Value));
            }
            Assert.True(Tracefs.TracepointId("syscalls/" + tp) > 0);
        }
    }
}
