// Usage: SnapshotBench <pid> <core> [runs]: snapshots the process (a warm-up run first), prints the last run's figures.
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Snapshot;

int pid = int.Parse(args[0]);
int runs = args.Length > 2 ? int.Parse(args[2]) : 3;
ProcessSnapshot? best = null;
for (int i = 0; i < runs; i++)
{
    File.Delete(args[1]);
    var s = new LiveSnapshotter(NullLogger.Instance).Save(pid, args[1], SnapshotMemory.Default);
    if (i > 0 && (best is null || s.Duration < best.Duration)) best = s;
    if (runs == 1) best = s;
}
Console.WriteLine($"total_ms={best!.Duration.TotalMilliseconds:F1} paused_ms={best.PausedFor.TotalMilliseconds:F2} memory_mib={best.MemoryBytes / 1048576.0:F1} mbps={best.MegabytesPerSecond:F0}");
