// Usage: SyscallTraceBench [--engine bpf|ptrace] [--filter NAMES] [--count NAME] [--no-pin] [--no-decode] [--repeat N] -- PROGRAM ARGS...
// Traces the program with the engine alone (no PowerShell), consuming every event, and prints:
// total_ms (best of the repeats, after the first run warmed the JIT), calls (SyscallEvents named NAME,
// all with "*"), lost (the Count of LostEventsEvents), peak_rss_mib (VmHWM) and gc_heap_mib.
using System.Diagnostics;
using System.Threading.Channels;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Tracing;
using PSLinuxTrace.Engine.Tracing.Bpf;

string? filter = null, count = "*", engine = "ptrace";
bool pin = true, decode = true;
int repeat = 2;
int i = 0;
for (; i < args.Length && args[i] != "--"; i++)
{
    switch (args[i])
    {
        case "--engine": engine = args[++i]; break;
        case "--filter": filter = args[++i]; break;
        case "--count": count = args[++i]; break;
        case "--no-pin": pin = false; break;
        case "--no-decode": decode = false; break;
        case "--repeat": repeat = int.Parse(args[++i]); break;
    }
}
string program = args[i + 1];
var programArgs = args[(i + 2)..];
var options = new SyscallTraceOptions
{
    Filter = filter is null ? null : SyscallFilter.Parse([filter], SyscallArchitectureX64.Instance),
    PinToTraceeCpu = pin,
    DecodeArguments = decode,
};
double best = double.MaxValue;
long calls = 0, lost = 0;
for (int r = 0; r < repeat; r++)
{
    var sw = Stopwatch.StartNew();
    long n = 0, l = 0;
    ChannelReader<TraceEvent> reader = engine == "bpf"
        ? BpfSyscallTracer.Launch(program, programArgs, options, stdoutPath: "/dev/null", stderrPath: "/dev/null")
        : SyscallTracer.Launch(program, programArgs, options, stdoutPath: "/dev/null", stderrPath: "/dev/null");
    foreach (var e in SyscallTracer.ReadAll(reader))
    {
        if (e is SyscallEvent s && (count == "*" || s.Name == count)) n++;
        else if (e is LostEventsEvent le) l += le.Count;
    }
    sw.Stop();
    if (r > 0 || repeat == 1) best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
    calls = n;
    lost = l;
}
string hwm = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:"));
double rssMib = long.Parse(hwm.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
Console.WriteLine($"total_ms={best:F1} calls={calls} lost={lost} peak_rss_mib={rssMib:F1} gc_heap_mib={GC.GetTotalMemory(false) / 1048576.0:F1}");
