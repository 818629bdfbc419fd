// Usage:
//   DwarfBench resolve FILE < addresses      prints what `addr2line -a -f -i -e FILE` prints (no columns)
//   DwarfBench time FILE N < addresses       in-process: load + first lookup, all lookups in a fresh
//                                            instance (cold), all again (warm); medians of N runs, ms
//   DwarfBench same FILE A2L < addresses     "same=A/B": addresses whose frames equal addr2line's output A2L
// Addresses are hex, one a line, as addr2line reads them from stdin.
using System.Diagnostics;
using System.Globalization;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;

string mode = args[0], file = args[1];
var addresses = new List<ulong>();
for (string? line; (line = Console.ReadLine()) is not null;)
    if (line.Trim() is { Length: > 0 } t) addresses.Add(ulong.Parse(t.StartsWith("0x") ? t[2..] : t, NumberStyles.HexNumber));

using var elf = ElfFile.Open(file);
switch (mode)
{
    case "resolve":
    {
        var info = DwarfSourceInfo.Load(elf);
        var o = new System.Text.StringBuilder();
        foreach (ulong a in addresses)
        {
            o.Append("0x").Append(a.ToString("x16")).Append('\n');
            var frames = info?.Lookup(a) ?? [];
            if (frames.Count == 0) o.Append("??\n??:0\n");
            foreach (var f in frames)
                o.Append(f.Function ?? "??").Append('\n').Append(f.File ?? "??").Append(':').Append(f.Line == 0 ? "?" : f.Line.ToString()).Append('\n');
        }
        Console.Out.Write(o);
        break;
    }
    case "time":
    {
        int runs = int.Parse(args[2]);
        var load = new List<double>(); var cold = new List<double>(); var warm = new List<double>();
        for (int r = 0; r < runs; r++)
        {
            var sw = Stopwatch.StartNew();
            var info = DwarfSourceInfo.Load(elf)!;
            info.Lookup(addresses[0]);
            load.Add(sw.Elapsed.TotalMilliseconds);
            info = DwarfSourceInfo.Load(elf)!;
            sw.Restart();
            foreach (ulong a in addresses) info.Lookup(a);
            cold.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            foreach (ulong a in addresses) info.Lookup(a);
            warm.Add(sw.Elapsed.TotalMilliseconds);
        }
        static double Median(List<double> v) { v.Sort(); return v[v.Count / 2]; }
        Console.WriteLine($"load_first_ms={Median(load):F2} cold_all_ms={Median(cold):F2} warm_all_ms={Median(warm):F3}");
        break;
    }
    case "same":
    {
        var info = DwarfSourceInfo.Load(elf)!;
        var reference = ParseAddr2Line(File.ReadAllText(args[2]));
        int same = 0;
        foreach (ulong a in addresses)
        {
            var ours = info.Lookup(a);
            var theirs = reference[a];
            bool ok = ours.Count == 0 ? theirs.Count == 1 && theirs[0].Line == "?" :
                ours.Count == theirs.Count && ours.Select((f, i) => (f, t: theirs[i]))
                    .All(x => (x.f.Function is null || x.f.Function == x.t.Function) && (x.f.File ?? "??") == x.t.File && (x.f.Line == 0 ? "?" : x.f.Line.ToString()) == x.t.Line);
            if (ok) same++;
        }
        Console.WriteLine($"same={same}/{addresses.Count}");
        break;
    }
}

static Dictionary<ulong, List<(string Function, string File, string Line)>> ParseAddr2Line(string text)
{
    var result = new Dictionary<ulong, List<(string, string, string)>>();
    List<(string, string, string)>? current = null;
    string? function = null;
    foreach (string raw in text.Split('\n'))
    {
        string line = raw.TrimEnd();
        if (line.Length == 0) continue;
        if (line.StartsWith("0x") && ulong.TryParse(line[2..], NumberStyles.HexNumber, null, out ulong a)) { result[a] = current = []; function = null; continue; }
        if (function is null) { function = line; continue; }
        int d = line.IndexOf(" (discriminator", StringComparison.Ordinal);
        if (d >= 0) line = line[..d];
        int colon = line.LastIndexOf(':');
        current!.Add((function, line[..colon], line[(colon + 1)..]));
        function = null;
    }
    return result;
}
