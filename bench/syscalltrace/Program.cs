// Usage: SyscallTraceBench [--engine bpf|ptrace] [--filter NAMES] [--count NAME] [--no-pin] [--no-decode] [--repeat N] [--bystander] -- PROGRAM ARGS...
// Traces the program with the engine alone (no PowerShell), consuming every event, and prints:
// total_ms (best of the repeats, after the first run warmed the JIT), calls (SyscallEvents named NAME,
// all with "*"), lost (the Count of LostEventsEvents), peak_rss_mib (VmHWM) and gc_heap_mib.
// --bystander: runs the program untraced while the eBPF engine traces an idle process, and prints
// its total_ms: what a trace costs every other process on the machine (the raw syscall tracepoints
// run for all of them).
using System.Diagnostics;
using System.Threading.Channels;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Tracing;
using PSLinuxTrace.Engine.Tracing.Bpf;

string? filter = null, count = "*", engine = "ptrace";
bool pin = true, decode = true, bystander = false;
int repeat = 2;
int stack = 0;
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
        case "--bystander": bystander = true; break;
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
if (bystander)
{
    using var idle = Process.Start("sleep", "3600")!;
    using var stop = new CancellationTokenSource();
    var trace = BpfSyscallTracer.Attach([idle.Id], new SyscallTraceOptions(), cancel: stop.Token);
    for (int r = 0; r < repeat; r++)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in programArgs) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
    }
    stop.Cancel();
    _ = SyscallTracer.ReadAll(trace).ToList();
    idle.Kill();
    Console.WriteLine($"total_ms={best:F1}");
    return;
}
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
