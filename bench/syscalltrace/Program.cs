// Usage: SyscallTraceBench [--filter NAMES] [--no-pin] [--no-decode] [--repeat N] -- PROGRAM ARGS...
// Traces the program with the engine, consuming every event as a pipeline to Measure-Object would
// (count only), and prints: total_ms (best of the repeats, after the first run warmed the JIT), events,
// peak_rss_mib (VmHWM of this process) and gc_heap_mib.
using System.Diagnostics;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Tracing;

string? filter = null;
bool pin = true, decode = true;
int repeat = 2;
int stack = 0;
int i = 0;
for (; i < args.Length && args[i] != "--"; i++)
{
    switch (args[i])
    {
        case "--filter": filter = args[++i]; break;
        case "--no-pin": pin = false; break;
        case "--no-decode": decode = false; break;
        case "--repeat": repeat = int.Parse(args[++i]); break;
        case "--stack": stack = int.Parse(args[++i]); break;
    }
}
string program = args[i + 1];
var programArgs = args[(i + 2)..];
var options = new SyscallTraceOptions
{
    Filter = filter is null ? null : SyscallFilter.Parse([filter], SyscallArchitectureX64.Instance),
    PinToTraceeCpu = pin,
    DecodeArguments = decode,
    StackFrames = stack,
};
double best = double.MaxValue;
long events = 0;
for (int r = 0; r < repeat; r++)
{
    var sw = Stopwatch.StartNew();
    long n = 0;
    foreach (var e in SyscallTracer.ReadAll(SyscallTracer.Launch(program, programArgs, options, stdoutPath: "/dev/null", stderrPath: "/dev/null")))
        if (e is SyscallEvent) n++;
    sw.Stop();
    if (r > 0 || repeat == 1) best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
    events = n;
}
string hwm = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:"));
double rssMib = long.Parse(hwm.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
Console.WriteLine($"total_ms={best:F1} events={events} peak_rss_mib={rssMib:F1} gc_heap_mib={GC.GetTotalMemory(false) / 1048576.0:F1}");
