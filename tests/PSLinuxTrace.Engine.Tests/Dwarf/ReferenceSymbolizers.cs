using System.Globalization;
using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Tests.Infrastructure;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>One frame as a reference tool prints it (Line 0: the tool printed "?" or 0; File null: "??").</summary>
public sealed record ReferenceFrame(string? Function, string? File, int Line, int Column);

/// <summary>
/// Runs addr2line, eu-addr2line and llvm-symbolizer over many addresses at once and parses what
/// they print, one frame list per address (innermost first, as `-i`/`--inlining` print them).
/// </summary>
public static partial class ReferenceSymbolizers
{
    private const int Chunk = 1500; // addresses per command line

    /// <summary>`addr2line -a -f -i -e FILE ADDR...`: "0xADDR", then function / file:line pairs.</summary>
    public static Dictionary<ulong, List<ReferenceFrame>> Addr2Line(string file, IReadOnlyCollection<ulong> addresses) =>
        RunChunked(addresses, chunk => Tool.Check("addr2line", ["-a", "-f", "-i", "-e", file, .. chunk]), ParseAddr2Line);

    /// <summary>`eu-addr2line -a -f -i -e FILE ADDR...`: as addr2line, with columns, and "f inlined at ... in g" on an inlined function's line.</summary>
    public static Dictionary<ulong, List<ReferenceFrame>> EuAddr2Line(string file, IReadOnlyCollection<ulong> addresses) =>
        RunChunked(addresses, chunk => Tool.Run("eu-addr2line", ["-a", "-f", "-i", "-e", file, .. chunk]).StdOut, ParseAddr2Line); // exits 1 when an address has no line

    /// <summary>`llvm-symbolizer-14 --inlining --print-address --obj=FILE ADDR...` (linkage names): blocks separated by blank lines.</summary>
    public static Dictionary<ulong, List<ReferenceFrame>> LlvmSymbolizer(string file, IReadOnlyCollection<ulong> addresses) =>
        RunChunked(addresses, chunk => Tool.Check("llvm-symbolizer-14", ["--inlining", "--print-address", "--functions=linkage", "--obj=" + file, .. chunk]), ParseAddr2Line);

    private static Dictionary<ulong, List<ReferenceFrame>> RunChunked(IReadOnlyCollection<ulong> addresses, Func<string[], string> run,
        Action<string, Dictionary<ulong, List<ReferenceFrame>>> parse)
    {
        var result = new Dictionary<ulong, List<ReferenceFrame>>();
        foreach (var chunk in addresses.Distinct().Chunk(Chunk))
            parse(run(chunk.Select(a => $"0x{a:x}").ToArray()), result);
        return result;
    }

    /// <summary>
    /// All three print an address line, then (function, location) pairs; the location is
    /// "file:line[:column]" with "?" or 0 for an unknown line and "??" for an unknown file,
    /// addr2line may append " (discriminator N)", eu-addr2line writes "f inlined at L in g".
    /// </summary>
    private static void ParseAddr2Line(string output, Dictionary<ulong, List<ReferenceFrame>> into)
    {
        List<ReferenceFrame>? current = null;
        string? function = null;
        foreach (string raw in output.Split('\n'))
        {
            string line = raw.TrimEnd();
            if (line.Length == 0) continue;
            if (AddressLine().Match(line) is { Success: true } a)
            {
                into[ulong.Parse(a.Groups[1].Value, NumberStyles.HexNumber)] = current = [];
                function = null;
                continue;
            }
            if (current is null) continue;
            if (function is null)
            {
                int inlined = line.IndexOf(" inlined at ", StringComparison.Ordinal);
                function = inlined >= 0 ? line[..inlined] : line;
                continue;
            }
            current.Add(ParseLocation(function, line));
            function = null;
        }
    }

    private static ReferenceFrame ParseLocation(string function, string location)
    {
        location = Discriminator().Replace(location, "");
        string? file = location;
        int lineNo = 0, column = 0;
        var m = LineColumn().Match(location);
        if (m.Success)
        {
            file = m.Groups[1].Value;
            lineNo = m.Groups[2].Value == "?" ? 0 : int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
            column = m.Groups[3].Success ? int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture) : 0;
        }
        return new ReferenceFrame(function == "??" ? null : function, file == "??" ? null : file, lineNo, column);
    }

    [GeneratedRegex(@"^0x([0-9a-f]+)$")]
    private static partial Regex AddressLine();

    [GeneratedRegex(@" \(discriminator \d+\)$")]
    private static partial Regex Discriminator();

    [GeneratedRegex(@"^(.*?):(\d+|\?)(?::(\d+))?$")]
    private static partial Regex LineColumn();

    /// <summary>Every instruction address `objdump -d` shows in the file's code sections.</summary>
    public static List<ulong> InstructionAddresses(string file)
    {
        var list = new List<ulong>();
        foreach (string line in Tool.Check("objdump", "-d", "--no-show-raw-insn", file).Split('\n'))
            if (InstructionLine().Match(line) is { Success: true } m)
                list.Add(ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber));
        return list;
    }

    [GeneratedRegex(@"^\s+([0-9a-f]+):\t")]
    private static partial Regex InstructionLine();
}
