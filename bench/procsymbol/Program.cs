// Times what one Get-ProcSymbol call does (a fresh scanner: every file parsed again) over every
// process, in a warm process: the first pass warms the JIT and the page cache, then N timed passes.
// Usage: ProcSymbolBench <name> <path-glob> [iterations]
using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Symbols;

string name = args.Length > 0 ? args[0] : "malloc";
string path = args.Length > 1 ? args[1] : "libc.so*";
int iterations = args.Length > 2 ? int.Parse(args[2]) : 30;
var query = new ProcSymbolQuery(new[] { name }, new[] { path });

int Run(out int processes)
{
    using var scanner = new ProcSymbolScanner(NullLogger.Instance);
    var found = scanner.Scan(query, null, (_, _) => { }).ToList();
    processes = found.Select(f => f.Pid).Distinct().Count();
    return found.Count;
}

var cold = Stopwatch.StartNew();
int n = Run(out int procs);
double first = cold.Elapsed.TotalMilliseconds;
var times = new List<double>();
for (int i = 0; i < iterations; i++)
{
    var sw = Stopwatch.StartNew();
    Run(out _);
    times.Add(sw.Elapsed.TotalMilliseconds);
}
times.Sort();
if (times.Count == 0) times.Add(first);
Console.WriteLine($"results={n} processes={procs} first_ms={first:F1} warm_median_ms={times[times.Count / 2]:F1} warm_min_ms={times[0]:F1}");
