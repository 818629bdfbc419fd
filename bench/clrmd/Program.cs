// Usage: ClrMdBench PID REPEAT managed|native
// Captures every thread's stack of PID with the engine REPEAT times in this process, with managed frames
// (ClrMD over the DAC) or native frames only, and prints per run: total_ms (capture, unwind, symbolize and,
// with managed frames, ClrMD's open and stack walks), paused_ms, threads, frames, managed (managed frames).
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Stacks;

int pid = int.Parse(args[0]);
int repeat = int.Parse(args[1]);
bool managed = args[2] == "managed";
// BENCH_LOG=1: the engine's debug lines on stderr (where the time goes).
ILogger log = Environment.GetEnvironmentVariable("BENCH_LOG") == "1" ? new StderrLogger() : NullLogger.Instance;
using var reader = new ProcessStackReader(log) { ManagedFrames = managed };
for (int r = 0; r < repeat; r++)
{
    var sw = Stopwatch.StartNew();
    ProcessStack? stack = null;
    reader.Read([pid], s => stack = s, (_, ex) => throw ex, CancellationToken.None);
    sw.Stop();
    var frames = stack!.Threads.SelectMany(t => t.Frames).ToList();
    Console.WriteLine($"run={r} total_ms={sw.Elapsed.TotalMilliseconds:F1} paused_ms={stack.PausedFor.TotalMilliseconds:F2} " +
        $"threads={stack.Threads.Length} frames={frames.Count} managed={frames.Count(f => f.Kind == StackFrameKind.Managed)} warnings={stack.Warnings.Length}");
}

sealed class StderrLogger : ILogger
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel level) => level >= LogLevel.Debug;
    public void Log<TState>(LogLevel level, EventId id, TState state, Exception? ex, Func<TState, Exception?, string> format) =>
        Console.Error.WriteLine($"{_clock.Elapsed.TotalMilliseconds,9:F1} {level}: {format(state, ex)}");
}
