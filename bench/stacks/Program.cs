// Usage: StackBench PID [REPEAT]
// Captures every thread's stack of PID with the engine REPEAT times in this process (the first run also
// parses libc and the program: cold; later runs reuse the symbolizer: warm) and prints, per run:
// total_ms (capture + unwind + symbolize), paused_ms (the process's own pause), threads, frames.
using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Stacks;

int pid = int.Parse(args[0]);
int repeat = args.Length > 1 ? int.Parse(args[1]) : 1;
using var reader = new ProcessStackReader(NullLogger.Instance);
for (int r = 0; r < repeat; r++)
{
    var sw = Stopwatch.StartNew();
    ProcessStack? stack = null;
    reader.Read([pid], s => stack = s, (_, ex) => throw ex, CancellationToken.None);
    sw.Stop();
    Console.WriteLine($"run={r} total_ms={sw.Elapsed.TotalMilliseconds:F1} paused_ms={stack!.PausedFor.TotalMilliseconds:F2} " +
        $"threads={stack.Threads.Length} frames={stack.Threads.Sum(t => t.Frames.Length)}");
}
