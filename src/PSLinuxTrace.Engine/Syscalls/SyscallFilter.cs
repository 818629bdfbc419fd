using PSLinuxTrace.Engine.Text;

namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>
/// Which system calls to report, from names, wildcards (PowerShell style) and strace classes (%file...),
/// as strace's -e trace= takes them. A leading '!' negates one entry. Resolved to a bitmap by number.
/// </summary>
public sealed class SyscallFilter
{
    private readonly bool[] _selected;

    public ISyscallArchitecture Architecture { get; }

    private SyscallFilter(ISyscallArchitecture arch, bool[] selected) { Architecture = arch; _selected = selected; }

    /// <summary>Everything.</summary>
    public static SyscallFilter All(ISyscallArchitecture arch) => new(arch, Enumerable.Repeat(true, arch.MaxNumber + 1).ToArray());

    /// <summary>
    /// Parses the patterns; throws ArgumentException for a name or class that matches nothing (a typo
    /// would otherwise trace nothing silently).
    /// </summary>
    public static SyscallFilter Parse(IEnumerable<string> patterns, ISyscallArchitecture arch)
    {
        var list = patterns.SelectMany(p => p.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
        bool onlyNegations = list.Count > 0 && list.All(p => p.StartsWith('!'));
        var selected = new bool[arch.MaxNumber + 1];
        if (onlyNegations) Array.Fill(selected, true);
        foreach (string raw in list)
        {
            bool negate = raw.StartsWith('!');
            string p = negate ? raw[1..] : raw;
            var numbers = new List<int>();
            if (p.StartsWith('%'))
            {
                var names = arch.Class(p) ?? throw new ArgumentException($"Unknown system call class '{p}'. Known: {string.Join(", ", SyscallClasses.ClassNames)}.");
                numbers.AddRange(names.Select(arch.Number).Where(n => n >= 0));
            }
            else if (Glob.ContainsWildcards(p))
            {
                var g = new Glob(p, ignoreCase: true);
                numbers.AddRange(arch.AllNames.Where(g.IsMatch).Select(arch.Number));
                if (numbers.Count == 0) throw new ArgumentException($"The pattern '{p}' matches no system call.");
            }
            else
            {
                int n = arch.Number(p.ToLowerInvariant());
                if (n < 0 && int.TryParse(p, out int num) && num >= 0 && num <= arch.MaxNumber) n = num;
                if (n < 0) throw new ArgumentException($"Unknown system call '{p}'.");
                numbers.Add(n);
            }
            foreach (int n in numbers) selected[n] = !negate;
        }
        return new SyscallFilter(arch, selected);
    }

    /// <summary>Exactly the given numbers (what <see cref="Numbers"/> returned, as it crosses to the tracer process).</summary>
    public static SyscallFilter FromNumbers(ISyscallArchitecture arch, IEnumerable<int> numbers)
    {
        var selected = new bool[arch.MaxNumber + 1];
        foreach (int n in numbers)
            if (n >= 0 && n < selected.Length) selected[n] = true;
        return new SyscallFilter(arch, selected);
    }

    public bool IsAll => _selected.All(b => b);

    public bool Matches(long number) => number >= 0 && number < _selected.Length ? _selected[number] : IsAll;

    /// <summary>The selected numbers, ascending.</summary>
    public IReadOnlyList<int> Numbers => Enumerable.Range(0, _selected.Length).Where(i => _selected[i]).ToArray();
}
