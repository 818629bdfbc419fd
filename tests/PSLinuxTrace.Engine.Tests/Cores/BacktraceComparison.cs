using System.Text;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>
/// Our frames of one thread next to a reference tool's, frame by frame: the same function (equal names,
/// or for a real frame an alias of the same address in the module's symbol table), the same file:line,
/// and the same pc where the tool prints one. Renders both side by side for test output and the docs.
/// </summary>
internal static class BacktraceComparison
{
    /// <summary>
    /// The differences between <paramref name="theirs"/> and the first frames of <paramref name="ours"/>
    /// (empty when they agree). gdb stops at main ("backtrace past-main" is off), so where the tool's
    /// last frame is main we may go on (to __libc_start_call_main and _start); otherwise we must end too.
    /// <paramref name="columns"/>: compare columns too (eu-stack prints them, gdb does not).
    /// </summary>
    public static List<string> Differences(IReadOnlyList<ReferenceStackFrame> theirs, IReadOnlyList<StackFrame> ours, bool columns = false)
    {
        var differences = new List<string>();
        for (int i = 0; i < theirs.Count; i++)
        {
            var t = theirs[i];
            if (i >= ours.Count)
            {
                differences.Add($"#{i}: {t} is missing from ours");
                break;
            }
            var o = ours[i];
            if (!SameFunction(o, t.Function)) differences.Add($"#{i}: function {Name(o)}, the tool {t.Function}");
            if (!ReferenceBacktraces.SameFile(o.File, t.File) || o.Line != t.Line) differences.Add($"#{i}: location {o.File}:{o.Line}, the tool {t.File}:{t.Line}");
            if (columns && t.File is not null && o.Column != t.Column) differences.Add($"#{i}: column {o.Column}, the tool {t.Column}");
            if (t.Pc is { } pc && pc != o.InstructionPointer) differences.Add($"#{i}: pc 0x{o.InstructionPointer:x}, the tool 0x{pc:x}");
        }
        bool pastMain = theirs.Count > 0 && theirs[^1].Function == "main";
        if (ours.Count > theirs.Count && !pastMain)
            differences.Add($"we have {ours.Count - theirs.Count} more frame(s) from #{theirs.Count}: {ours[theirs.Count]}");
        return differences;
    }

    /// <summary>A markdown table of our frames next to the tool's.</summary>
    public static string Table(string title, IReadOnlyList<ReferenceStackFrame> theirs, IReadOnlyList<StackFrame> ours, string tool = "gdb")
    {
        var sb = new StringBuilder($"{title}\n\n| # | ours | {tool} |\n|---|---|---|\n");
        for (int i = 0; i < Math.Max(theirs.Count, ours.Count); i++)
        {
            string o = i < ours.Count ? $"{Name(ours[i])}{(ours[i].IsInlined ? " (inlined)" : "")} at {Short(ours[i].File)}:{ours[i].Line}" : "";
            string t = i < theirs.Count ? $"{theirs[i].Function} at {Short(theirs[i].File)}:{theirs[i].Line}" : "";
            sb.Append($"| {i} | {o} | {t} |\n");
        }
        return sb.ToString();
    }

    private static string Short(string? file) => file is null ? "??" : Path.GetFileName(file);

    private static string Name(StackFrame f) => f.Symbol ?? "??";

    /// <summary>
    /// Equal names; or (real frames only) aliases that start at the same address of the module's symbol table;
    /// or our gcc cold part (f.cold) of their f, the one naming difference we keep (docs/en-US/Read-CoreDump.md).
    /// </summary>
    public static bool SameFunction(StackFrame frame, string theirs)
    {
        if (frame.Symbol == theirs || (frame.Symbol is null && theirs == "??")) return true;
        if (!frame.IsInlined && frame.Symbol == theirs + ".cold") return true;
        if (frame.IsInlined || frame.Symbol is null || frame.ModulePath is null || theirs == "??") return false;
        using var elf = ElfFile.Open(frame.ModulePath);
        string? id = elf.BuildIdHex;
        string debug = id is null ? "" : $"/usr/lib/debug/.build-id/{id[..2]}/{id[2..]}.debug";
        using var symbols = File.Exists(debug) ? ElfFile.Open(debug) : ElfFile.Open(frame.ModulePath);
        var table = symbols.SymbolTable ?? symbols.DynamicSymbols!;
        ulong? Start(string name) => table.FindAll(name).FirstOrDefault()?.Value;
        return Start(frame.Symbol) is { } a && a == Start(theirs);
    }
}
