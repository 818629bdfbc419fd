// Usage: SnapshotBench <pid> <core> [runs]: snapshots the process (a warm-up run first), prints the best run's figures.
// SNAPSHOT_METHOD=WriteTracked|CloneTwin|Auto (default); SNAPSHOT_LOG=1: the engine's messages on stderr.
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Snapshot;

int pid = int.Parse(args[0]);
int runs = args.Length > 2 ? int.Parse(args[2]) : 3;
ProcessSnapshot? best = null;
for (int i = 0; i < runs; i++)
{
    File.Delete(args[1]);
    var s = new LiveSnapshotter(Environment.GetEnvironmentVariable("SNAPSHOT_LOG") == "1" ? new StderrLogger() : NullLogger.Instance)
        .Save(pid, args[1], SnapshotMemory.Default, method: Enum.Parse<SnapshotMethod>(Environment.GetEnvironmentVariable("SNAPSHOT_METHOD") ?? "Auto"));
    if (i > 0 && (best is null || s.Duration < best.Duration)) best = s;
    if (runs == 1) best = s;
}
Console.WriteLine($"total_ms={best!.Duration.TotalMilliseconds:F1} paused_ms={best.PausedFor.TotalMilliseconds:F2} memory_mib={best.MemoryBytes / 1048576.0:F1} mbps={best.MegabytesPerSecond:F0}");

/// <summary>SNAPSHOT_LOG=1: every engine message on stderr with a millisecond clock, to see where the time goes.</summary>
sealed class StderrLogger : Microsoft.Extensions.Logging.ILogger
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel level) => true;
    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel level, Microsoft.Extensions.Logging.EventId id, TState state, Exception? ex, Func<TState, Exception?, string> format) =>
        Console.Error.WriteLine($"{_clock.Elapsed.TotalMilliseconds,9:F2} ms {level,-11} {format(state, ex)}");
}
