using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Symbols;

/// <summary>
/// Get-ProcSymbol -Watch's loop, in the engine: each location once, a process that starts later found at
/// the next scan, an error once per watch, and a watched process that exits is not an error.
/// </summary>
public sealed class ProcSymbolWatchTests
{
    [Fact]
    public void NewProcessesAreFoundOnceAndAWatchedOneThatExitsIsNoError()
    {
        // A copy of its own: other tests run the same fixture meanwhile, and a watch of every process would see them.
        string exe = Path.Combine(Fixtures.ScratchDirectory, $"watched-{Guid.NewGuid():N}");
        File.Copy(Fixtures.Build("symbols"), exe);
        using var first = FixtureProcess.Start(exe);
        int firstPid = first.Pid, secondPid = 0;
        FixtureProcess? second = null;
        int missing = PSLinuxTrace.Engine.Tests.Procfs.ProcFsTests.DeadPid();
        using var scanner = new ProcSymbolScanner(NullLogger.Instance);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var found = new List<ProcSymbol>();
        var errors = new List<(int Pid, LinuxTraceException Error)>();
        int scans = 0;
        try
        {
            var watch = new ProcSymbolWatch(scanner, new ProcSymbolQuery(["main"]), null, TimeSpan.FromMilliseconds(100));
            foreach (var s in watch.Run((ex, pid) => errors.Add((pid, ex)), _ =>
            {
                scans++;
                if (scans == 1) secondPid = (second = FixtureProcess.Start(exe)).Pid; // appears between two scans
                if (scans == 3) first.Dispose();                   // goes while watched
                if (scans == 5) cts.Cancel();
            }, cts.Token))
                if (s.ModulePath == exe) found.Add(s);
        }
        finally
        {
            second?.Dispose();
        }
        Assert.Equal(5, scans);
        Assert.True(new[] { firstPid, secondPid }.Order().SequenceEqual(found.Select(s => s.Pid).Order()), string.Join("; ", found.Select(f => $"{f.Pid} {f.ProcessName} {f.Name} {f.ModulePath} parent={(File.Exists($"/proc/{f.Pid}/status") ? File.ReadLines($"/proc/{f.Pid}/status").First(l => l.StartsWith("PPid")) : "gone")}")) + $" first={firstPid} second={secondPid} me={Environment.ProcessId}");

        // A named process: a pid that does not exist is one error however many scans; one that exits
        // after the first scan is none.
        errors.Clear();
        scans = 0;
        using var named = FixtureProcess.Start(exe);
        int namedPid = named.Pid;
        using var cts2 = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var watch2 = new ProcSymbolWatch(scanner, new ProcSymbolQuery(["main"]), [missing, namedPid], TimeSpan.FromMilliseconds(50));
        foreach (var _ in watch2.Run((ex, pid) => errors.Add((pid, ex)), _ =>
        {
            if (++scans == 2) named.Dispose();
            if (scans == 4) cts2.Cancel();
        }, cts2.Token)) { }
        var error = Assert.Single(errors);
        Assert.Equal(missing, error.Pid);
        Assert.IsType<ProcessNotFoundException>(error.Error);
    }
}
