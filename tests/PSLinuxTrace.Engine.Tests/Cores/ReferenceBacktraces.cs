using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>One frame as gdb's bt or eu-stack -i -s prints it (Pc null: gdb printed none; File null: no source line).</summary>
public sealed record ReferenceStackFrame(int Index, ulong? Pc, string Function, string? File, int? Line, int? Column)
{
    public override string ToString() =>
        $"#{Index} {(Pc is { } pc ? $"0x{pc:x} " : "")}{Function}{(File is null ? "" : $" at {File}:{Line}{(Column is null ? "" : $":{Column}")}")}";
}

/// <summary>
/// The backtraces of every thread of a core as the reference tools print them:
/// `gdb -batch -ex 'thread apply all bt'` and `eu-stack -i -s --core`, parsed into frames by thread id.
/// </summary>
public static partial class ReferenceBacktraces
{
    /// <summary>
    /// gdb's `thread apply all bt`: "#N  [0xPC in ]FUNCTION (ARGS) [at FILE:LINE][ from LIB]" under "Thread N (... (LWP TID)):".
    /// With DEBUGINFOD_URLS in <paramref name="environment"/>, gdb asks those servers too; otherwise it asks none.
    /// </summary>
    public static Dictionary<int, List<ReferenceStackFrame>> Gdb(string exe, string core, IReadOnlyDictionary<string, string>? environment = null)
    {
        string debuginfod = environment?.ContainsKey("DEBUGINFOD_URLS") == true ? "on" : "off";
        var r = Tool.Run("gdb", ["-nx", "-batch", "-iex", $"set debuginfod enabled {debuginfod}", "-ex", "set width 0", "-ex", "set print frame-arguments none",
            "-ex", "thread apply all bt", exe, core], TimeSpan.FromMinutes(2), environment: environment);
        var result = new Dictionary<int, List<ReferenceStackFrame>>();
        List<ReferenceStackFrame>? current = null;
        foreach (string line in r.StdOut.Split('\n'))
        {
            if (GdbThread().Match(line) is { Success: true } t)
            {
                result[int.Parse(t.Groups[1].Value)] = current = [];
                continue;
            }
            if (current is null || GdbFrame().Match(line) is not { Success: true } f) continue;
            current.Add(new ReferenceStackFrame(int.Parse(f.Groups["n"].Value),
                f.Groups["pc"].Success ? Convert.ToUInt64(f.Groups["pc"].Value, 16) : null, f.Groups["fn"].Value,
                f.Groups["file"].Success ? f.Groups["file"].Value : null, f.Groups["line"].Success ? int.Parse(f.Groups["line"].Value) : null, null));
        }
        Assert.True(result.Count > 0, $"gdb printed no threads:\n{r.StdOut}\n{r.StdErr}");
        return result;
    }

    /// <summary>`eu-stack -i -s --core`: "TID N:", then "#N  0xPC FUNCTION" lines, each followed by "    FILE:LINE[:COLUMN]" when it has a line.</summary>
    public static Dictionary<int, List<ReferenceStackFrame>> EuStack(string exe, string core)
    {
        var r = Tool.Run("eu-stack", ["-i", "-s", "--core=" + core, "-e", exe], TimeSpan.FromMinutes(2));
        var result = new Dictionary<int, List<ReferenceStackFrame>>();
        List<ReferenceStackFrame>? current = null;
        foreach (string line in r.StdOut.Split('\n'))
        {
            if (EuThread().Match(line) is { Success: true } t)
            {
                result[int.Parse(t.Groups[1].Value)] = current = [];
                continue;
            }
            if (current is null) continue;
            if (EuFrame().Match(line) is { Success: true } f)
                current.Add(new ReferenceStackFrame(int.Parse(f.Groups[1].Value), Convert.ToUInt64(f.Groups[2].Value, 16), f.Groups[3].Success ? f.Groups[3].Value : "??", null, null, null));
            else if (EuSource().Match(line) is { Success: true } s && current.Count > 0)
                current[^1] = current[^1] with
                {
                    File = s.Groups[1].Value, Line = int.Parse(s.Groups[2].Value),
                    Column = s.Groups[3].Success ? int.Parse(s.Groups[3].Value) : null,
                };
        }
        Assert.True(result.Count > 0, $"eu-stack printed no threads:\n{r.StdOut}\n{r.StdErr}");
        return result;
    }

    /// <summary>
    /// Whether our file (the line table's directory and name joined, as addr2line prints it) is the one
    /// a tool printed: gdb and eu-stack print the name relative to the unit's directory (./nptl/x.c,
    /// ../sysdeps/y.c) when the line table gives it so, which must then be the end of ours.
    /// </summary>
    public static bool SameFile(string? ours, string? theirs)
    {
        if (ours is null || theirs is null) return ours == theirs;
        if (Path.IsPathRooted(theirs)) return ours == theirs;
        string tail = Regex.Replace(theirs, @"^(\.\.?/)+", "");
        return ours.EndsWith("/" + tail, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^Thread \d+ \(.*LWP (\d+)\)")]
    private static partial Regex GdbThread();
    [GeneratedRegex(@"^#(?<n>\d+)\s+(?:0x(?<pc>[0-9a-f]+) in )?(?<fn>\S+) \(.*?\)(?: at (?<file>\S+):(?<line>\d+))?(?: from \S+)?$")]
    private static partial Regex GdbFrame();
    [GeneratedRegex(@"^TID (\d+):")]
    private static partial Regex EuThread();
    [GeneratedRegex(@"^#(\d+)\s+0x([0-9a-f]+)(?:\s+(\S+))?")]
    private static partial Regex EuFrame();
    [GeneratedRegex(@"^\s+(\S+?):(\d+)(?::(\d+))?$")]
    private static partial Regex EuSource();
}
