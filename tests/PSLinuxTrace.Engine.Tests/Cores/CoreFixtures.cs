using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Cores;

/// <summary>
/// Real cores made during the test run: by the kernel (a crashing fixture with RLIMIT_CORE
/// unlimited and core_pattern "core") and by gcore (a live fixture), once per kind per run.
/// </summary>
public static class CoreFixtures
{
    private static readonly ConcurrentDictionary<string, Lazy<(string Exe, string Core)>> Made = new();
    private static readonly object PatternLock = new();

    public static string Executable => Fixtures.Build("crash", "-pthread");

    /// <summary>
    /// A kernel core of `crash mode threads`, the fixture built with extra cc <paramref name="flags"/> when given;
    /// another <paramref name="run"/> is another crash of the same program (another pid, other ASLR bases).
    /// </summary>
    public static (string Exe, string Core) Kernel(string mode, int threads, string flags = "", int run = 0) =>
        Made.GetOrAdd($"kernel-{mode}-{threads}{(flags.Length == 0 ? "" : "-" + string.Concat(flags.Where(char.IsLetterOrDigit)))}{(run == 0 ? "" : $"-run{run}")}", key => new Lazy<(string, string)>(() =>
        {
            string dir = Path.Combine(Fixtures.ScratchDirectory, key);
            Directory.CreateDirectory(dir);
            string exe = flags.Length == 0 ? Executable : Fixtures.Build("crash", "-pthread " + flags);
            lock (PatternLock)
            {
                string pattern = File.ReadAllText("/proc/sys/kernel/core_pattern").Trim();
                bool restore = false;
                if (pattern != "core")
                {
                    // A pipe (systemd-coredump, apport) or an absolute pattern: point it at the crash's
                    // working directory for this one crash, then put it back.
                    File.WriteAllText("/proc/sys/kernel/core_pattern", "core");
                    restore = true;
                }
                try
                {
                    var r = Tool.Run("sh", new[] { "-c", "ulimit -c unlimited && exec \"$0\" \"$@\"", exe, mode, threads.ToString() },
                        TimeSpan.FromMinutes(1), dir);
                    Assert.True(r.ExitCode != 0, $"the fixture did not crash: {r.StdOut}");
                    File.WriteAllText(Path.Combine(dir, "stdout.txt"), r.StdOut);
                }
                finally
                {
                    if (restore) File.WriteAllText("/proc/sys/kernel/core_pattern", pattern);
                }
            }
            string core = Path.Combine(dir, File.Exists(Path.Combine(dir, "core")) ? "core" : Directory.GetFiles(dir, "core*").FirstOrDefault() ?? "core");
            Assert.True(File.Exists(core), $"the kernel wrote no core in {dir} (core_pattern: {File.ReadAllText("/proc/sys/kernel/core_pattern").Trim()})");
            return (exe, core);
        })).Value;

    /// <summary>What the crashed fixture printed (pid=..., pslt_crash_here=...).</summary>
    public static Dictionary<string, string> Printed(string core) =>
        File.ReadAllLines(Path.Combine(Path.GetDirectoryName(core)!, "stdout.txt"))
            .Select(l => l.Split('=', 2)).Where(a => a.Length == 2).ToDictionary(a => a[0], a => a[1]);

    /// <summary>A gcore core of a live `crash wait threads` (the fixture is killed afterwards).</summary>
    public static (string Exe, string Core, int Pid) Gcore(int threads)
    {
        var made = Made.GetOrAdd($"gcore-{threads}", key => new Lazy<(string, string)>(() =>
        {
            string dir = Path.Combine(Fixtures.ScratchDirectory, key);
            Directory.CreateDirectory(dir);
            using var p = FixtureProcess.Start(Executable, "wait", threads.ToString());
            string prefix = Path.Combine(dir, "core");
            var r = Tool.Run("gcore", new[] { "-o", prefix, p.Pid.ToString() }, TimeSpan.FromMinutes(2));
            Assert.True(r.ExitCode == 0, $"gcore failed: {r.StdErr}");
            string core = $"{prefix}.{p.Pid}";
            File.WriteAllText(core + ".pid", p.Pid.ToString());
            return (Executable, core);
        })).Value;
        return (made.Exe, made.Core, int.Parse(File.ReadAllText(made.Core + ".pid")));
    }

    /// <summary>gdb's `thread apply all bt` of a core: LWP → frames (pc or null for frame 0, function name or "??").</summary>
    public static Dictionary<int, List<(ulong? Pc, string Name)>> GdbBacktraces(string exe, string core)
    {
        var r = Tool.Run("gdb", new[] { "-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "set width 0", "-ex", "thread apply all bt", exe, core },
            TimeSpan.FromMinutes(2));
        var result = new Dictionary<int, List<(ulong?, string)>>();
        List<(ulong?, string)>? current = null;
        foreach (string line in r.StdOut.Split('\n'))
        {
            var t = Regex.Match(line, @"^Thread \d+ \(.*LWP (\d+)\)");
            if (t.Success)
            {
                current = new List<(ulong?, string)>();
                result[int.Parse(t.Groups[1].Value)] = current;
                continue;
            }
            var f = Regex.Match(line, @"^#\d+\s+(?:0x([0-9a-f]+) in )?(\S+) \(");
            if (f.Success && current is not null)
                current.Add((f.Groups[1].Success ? Convert.ToUInt64(f.Groups[1].Value, 16) : null, f.Groups[2].Value));
        }
        Assert.True(result.Count > 0, $"gdb printed no threads:\n{r.StdOut}\n{r.StdErr}");
        return result;
    }
}
