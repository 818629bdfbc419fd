// Usage: CoreBench <core> [iterations]. Prints frames and times: the first read (cold process),
// and the median of N reads with a fresh reader each (what one Read-CoreDump call costs in a warm session).
// CoreBench --once <core>: one read in this (new) process: when the CoreDump was there, when every
// thread's frames had been walked, threads with a named frame, and the peak RSS (VmHWM).
// CoreBench --time <command...>: runs a command (gdb, eu-stack): when its first line came, when it ended.
// CoreBench <core> --same-as <gdb-bt-output> prints "same=A/B": the threads whose frames agree with
// gdb's `thread apply all bt`: every pc gdb prints (frames 1 and up) is among ours, in gdb's order,
// except the tail-call frames gdb synthesizes from DWARF call sites (their pc is nowhere on the stack).
using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;

if (args[0] == "--once") { Once(args[1]); return; }
if (args[0] == "--time") { TimeCommand(args[1..]); return; }
string core = args[0];
if (args.Length > 2 && args[1] == "--same-as")
{
    using var r = new CoreDumpReader(NullLogger.Instance);
    var dump = r.Read(core);
    var gdb = new Dictionary<int, List<ulong>>();
    List<ulong>? current = null;
    foreach (string line in File.ReadLines(args[2]))
    {
        var t = Regex.Match(line, @"^Thread \d+ \(.*LWP (\d+)\)");
        if (t.Success) gdb[int.Parse(t.Groups[1].Value)] = current = new List<ulong>();
        else if (Regex.Match(line, @"^#\d+\s+0x([0-9a-f]+) in ") is { Success: true } f && current is not null)
            current.Add(Convert.ToUInt64(f.Groups[1].Value, 16));
    }
    int same = 0;
    foreach (var t in dump.Threads)
    {
        if (!gdb.TryGetValue(t.Tid, out var pcs) || t.Frames.Length == 0) continue;
        ulong lo = t.Registers.Rsp, hi = t.Frames[^1].StackPointer + 64;
        byte[] stack = hi > lo && hi - lo < 1 << 24 ? dump.ReadMemory(lo, (int)(hi - lo)) : Array.Empty<byte>();
        bool OnStack(ulong pc) { for (int i = 0; i + 8 <= stack.Length; i += 8) if (BitConverter.ToUInt64(stack, i) == pc) return true; return false; }
        int k = 1;
        bool ok = true;
        foreach (ulong pc in pcs)
        {
            int at = Array.FindIndex(t.Frames, k, x => x.InstructionPointer == pc);
            if (at >= 0) k = at;
            else if (OnStack(pc)) { ok = false; Console.Error.WriteLine($"thread {t.Tid}: gdb has 0x{pc:x}, we do not"); }
        }
        same += ok ? 1 : 0;
    }
    Console.WriteLine($"same={same}/{gdb.Count}");
    return;
}
int iterations = args.Length > 1 ? int.Parse(args[1]) : 10;
int Frames()
{
    using var reader = new CoreDumpReader(NullLogger.Instance);
    var c = reader.Read(core);
    return c.Threads.Sum(t => t.Frames.Length);
}
var sw = Stopwatch.StartNew();
int frames = Frames();
double first = sw.Elapsed.TotalMilliseconds;
var times = new List<double>();
for (int i = 0; i < iterations; i++)
{
    sw.Restart();
    Frames();
    times.Add(sw.Elapsed.TotalMilliseconds);
}
times.Sort();
Console.WriteLine($"frames={frames} first_ms={first:F1} warm_median_ms={(times.Count > 0 ? times[times.Count / 2] : first):F1}");

static void Once(string core)
{
    var sw = Stopwatch.StartNew();
    using var reader = new CoreDumpReader(NullLogger.Instance);
    var dump = reader.Read(core);
    double first = sw.Elapsed.TotalMilliseconds;
    int frames = 0, named = 0;
    foreach (var t in dump.Threads)
    {
        frames += t.Frames.Length;
        if (t.Frames.Any(f => f.Symbol is not null)) named++;
        _ = string.Join("\n", t.Frames.Select(f => f.ToString())); // what printing every stack costs
    }
    double total = sw.Elapsed.TotalMilliseconds;
    string hwm = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
    Console.WriteLine($"first_ms={first:F1} total_ms={total:F1} threads={dump.Threads.Length} named={named} frames={frames} rss_kb={hwm} core_mb={dump.CoreSize >> 20}");
}

static void TimeCommand(string[] command)
{
    var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (string a in command[1..]) psi.ArgumentList.Add(a);
    var sw = Stopwatch.StartNew();
    using var p = Process.Start(psi)!;
    p.ErrorDataReceived += (_, _) => { };
    p.BeginErrorReadLine();
    double first = -1;
    int lines = 0;
    while (p.StandardOutput.ReadLine() is not null)
    {
        if (first < 0) first = sw.Elapsed.TotalMilliseconds;
        lines++;
    }
    p.WaitForExit();
    Console.WriteLine($"first_ms={first:F1} total_ms={sw.Elapsed.TotalMilliseconds:F1} lines={lines} exit={p.ExitCode}");
}
