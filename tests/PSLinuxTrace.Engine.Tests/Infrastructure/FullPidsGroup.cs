namespace PSLinuxTrace.Engine.Tests.Infrastructure;

/// <summary>
/// Moves a process into a new pids control group (the v1 pids hierarchy, or cgroup v2 with the pids controller)
/// whose pids.max is the number of tasks it has: it cannot fork or start a thread. Disposing moves it back
/// into the group it came from and removes the new one.
/// </summary>
public sealed class FullPidsGroup : IDisposable
{
    private readonly int _pid;
    private readonly string _group, _home;

    public FullPidsGroup(int pid)
    {
        _pid = pid;
        var (mount, v2) = FindPidsMount();
        string line = File.ReadAllLines($"/proc/{pid}/cgroup")
            .First(l => v2 ? l.StartsWith("0::", StringComparison.Ordinal) : l.Split(':')[1].Split(',').Contains("pids"));
        _home = mount + line[(line.IndexOf(':', line.IndexOf(':') + 1) + 1)..].TrimEnd('/');
        if (v2)
        {
            // A v2 group gets the controller from its parent: the root may enable it for its children.
            if (!File.ReadAllText(Path.Combine(mount, "cgroup.subtree_control")).Split(' ', '\n').Contains("pids"))
                File.WriteAllText(Path.Combine(mount, "cgroup.subtree_control"), "+pids");
        }
        _group = Path.Combine(mount, $"pslt-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_group);
        File.WriteAllText(Path.Combine(_group, "cgroup.procs"), pid.ToString());
        int tasks = Directory.GetDirectories($"/proc/{pid}/task").Length;
        File.WriteAllText(Path.Combine(_group, "pids.max"), tasks.ToString());
    }

    private static (string Mount, bool V2) FindPidsMount()
    {
        string? v2 = null;
        foreach (var line in File.ReadAllLines("/proc/self/mountinfo"))
        {
            var f = line.Split(' ');
            int dash = Array.IndexOf(f, "-");
            if (dash < 0 || dash + 3 >= f.Length) continue;
            if (f[dash + 1] == "cgroup" && f[dash + 3].Split(',').Contains("pids")) return (f[4], false);
            if (f[dash + 1] == "cgroup2" && File.ReadAllText(Path.Combine(f[4], "cgroup.controllers")).Split(' ', '\n').Contains("pids")) v2 ??= f[4];
        }
        return (v2 ?? throw new InvalidOperationException("no pids control group hierarchy is mounted"), true);
    }

    public void Dispose()
    {
        try { File.WriteAllText(Path.Combine(_home, "cgroup.procs"), _pid.ToString()); }
        catch (IOException) { } // the process is gone
        for (int i = 0; i < 50 && Directory.Exists(_group); i++)
        {
            try { Directory.Delete(_group); }
            catch (IOException) { Thread.Sleep(20); } // a task still leaving
        }
    }
}
