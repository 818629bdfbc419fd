using System.Diagnostics;

namespace PSLinuxTrace.Engine.Tests.Infrastructure;

/// <summary>
/// A running fixture program, started with Process.Start as users start their services (so the
/// .NET runtime of this test process waits for it on SIGCHLD, as pwsh does for Start-Process). The fixture prints lines of "key=value" to stdout and then "ready";
/// <see cref="Start"/> returns once "ready" arrives, with the values in <see cref="Values"/>.
/// Dispose kills and reaps it.
/// </summary>
public sealed class FixtureProcess : IDisposable
{
    private readonly Process _process;
    public Dictionary<string, string> Values { get; } = new();
    public int Pid => _process.Id;

    /// <summary>The fixture's own pid: what it printed as pid=, else the started process.</summary>
    public int TargetPid => Values.TryGetValue("pid", out var p) ? int.Parse(p) : _process.Id;
    public Process Process => _process;

    private FixtureProcess(Process p) => _process = p;

    public static FixtureProcess Start(string executable, params string[] args) => Start(executable, args, null);

    public static FixtureProcess Start(string executable, IEnumerable<string> args, string? workingDirectory, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (string a in args) psi.ArgumentList.Add(a);
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        var fp = new FixtureProcess(Process.Start(psi)!);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var lineTask = fp._process.StandardOutput.ReadLineAsync();
            if (!lineTask.Wait(deadline - DateTime.UtcNow) || lineTask.Result is null)
            {
                fp.Dispose();
                throw new InvalidOperationException($"{executable} did not print 'ready'");
            }
            string line = lineTask.Result;
            if (line == "ready") return fp;
            int eq = line.IndexOf('=');
            if (eq > 0) fp.Values[line[..eq]] = line[(eq + 1)..];
        }
    }

    /// <summary>Sends one line to the fixture and returns the line it answers with.</summary>
    public string Ask(string line, TimeSpan? timeout = null)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
        var task = _process.StandardOutput.ReadLineAsync();
        if (!task.Wait(timeout ?? TimeSpan.FromSeconds(30)) || task.Result is null)
            throw new InvalidOperationException("the fixture did not answer");
        return task.Result;
    }

    /// <summary>Parses a value the fixture printed as hex (0x...) or decimal.</summary>
    public ulong Address(string key)
    {
        string v = Values[key];
        return v.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? Convert.ToUInt64(v[2..], 16) : ulong.Parse(v);
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _process.WaitForExit(5000);
        _process.Dispose();
    }
}
