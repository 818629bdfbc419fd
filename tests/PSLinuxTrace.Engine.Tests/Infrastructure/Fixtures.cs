using System.Collections.Concurrent;

namespace PSLinuxTrace.Engine.Tests.Infrastructure;

/// <summary>
/// Builds the C fixture programs in tests/Fixtures with cc, once per test run and set of flags,
/// into a temporary folder. Fixtures are real programs that real tests trace, dump and inspect.
/// </summary>
public static class Fixtures
{
    private static readonly string Dir = Directory.CreateTempSubdirectory("pslt-fixtures-").FullName;
    private static readonly ConcurrentDictionary<string, Lazy<string>> Built = new();

    static Fixtures()
    {
        // The folder holds the built fixtures and test cores of this run only: gone when the run ends.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(Dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        };
    }

    /// <summary>Compiles tests/Fixtures/<paramref name="name"/>.c; returns the executable's path.</summary>
    /// <param name="name">file name without .c</param>
    /// <param name="flags">extra cc flags, e.g. "-no-pie", "-static", "-pthread"</param>
    /// <param name="outputName">the executable's name, when two builds of one source must differ</param>
    public static string Build(string name, string flags = "", string? outputName = null)
    {
        string output = System.IO.Path.Combine(Dir, outputName ?? (name + (flags.Length == 0 ? "" : "-" + Sanitize(flags))));
        return Built.GetOrAdd(output, o => new Lazy<string>(() =>
        {
            string source = Repo.Path("tests", "Fixtures", name + ".c");
            var args = new List<string> { "-g", "-O0", "-fno-omit-frame-pointer", "-o", o, source };
            args.AddRange(flags.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            var r = Tool.Run("cc", args);
            if (r.ExitCode != 0) throw new InvalidOperationException($"cc {string.Join(' ', args)} failed:\n{r.StdErr}");
            return o;
        })).Value;
    }

    /// <summary>A scratch folder for this test run, deleted when the test process exits.</summary>
    public static string ScratchDirectory { get; } = Dir;

    private static string Sanitize(string flags) =>
        new string(flags.Select(c => char.IsLetterOrDigit(c) ? c : '_').ToArray()).Trim('_');
}
