using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace PSLinuxTrace.Engine.Tests.Infrastructure;

/// <summary>
/// Debian's real debuginfod server (debuginfod(8), elfutils 0.188) over a folder of ELF files, on a
/// free port, started and stopped by the test that needs it. elfutils 0.188 has no option to bind
/// one address, so it listens on the port on every interface while it runs; tests talk to it on
/// 127.0.0.1. Its /metrics count what was asked of it.
/// </summary>
public sealed partial class DebuginfodServer : IDisposable
{
    private readonly Process _process;
    private readonly string _database;
    private readonly ConcurrentLines _log = new();

    private sealed class ConcurrentLines
    {
        private readonly List<string> _lines = new();
        public void Add(string? line) { if (line is not null) lock (_lines) _lines.Add(line); }
        public List<string> Snapshot() { lock (_lines) return _lines.ToList(); }
    }

    public Uri Url { get; }

    private DebuginfodServer(Process process, int port, string database)
    {
        _process = process;
        _database = database;
        Url = new Uri($"http://127.0.0.1:{port}/");
    }

    /// <summary>Serves <paramref name="folder"/> once the server has scanned all of its files (at most 30 s).</summary>
    public static DebuginfodServer Start(string folder)
    {
        int files = Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Length;
        for (int attempt = 0; ; attempt++)
        {
            int port = FreePort();
            string db = Path.Combine(Fixtures.ScratchDirectory, $"debuginfod-{Guid.NewGuid():N}.sqlite");
            var psi = new ProcessStartInfo("debuginfod") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            // -t 0 -g 0: one scan, no rescans or grooming while the test runs; -v: a line per request.
            foreach (string a in new[] { "-F", folder, "-p", port.ToString(), "-d", db, "-t", "0", "-g", "0", "-v" }) psi.ArgumentList.Add(a);
            var server = new DebuginfodServer(Process.Start(psi)!, port, db);
            server._process.OutputDataReceived += (_, e) => server._log.Add(e.Data);
            server._process.ErrorDataReceived += (_, e) => server._log.Add(e.Data);
            server._process.BeginOutputReadLine();
            server._process.BeginErrorReadLine();
            if (server.WaitUntilScanned(files, TimeSpan.FromSeconds(30))) return server;
            string log = string.Join('\n', server._log.Snapshot());
            server.Dispose();
            if (attempt == 2) throw new InvalidOperationException($"debuginfod did not come up on 127.0.0.1:{port}:\n{log}");
        }
    }

    /// <summary>
    /// The requests for <paramref name="artifact"/> ("debuginfo", "executable") the server has had: its
    /// http_requests_total metric, counted when a request arrives (its log line comes only after the answer).
    /// </summary>
    public int Requests(string artifact)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string metrics = http.GetStringAsync(new Uri(Url, "metrics")).GetAwaiter().GetResult();
        var m = Regex.Match(metrics, $@"^http_requests_total\{{type=""{Regex.Escape(artifact)}""\}} (\d+)", RegexOptions.Multiline);
        return m.Success ? int.Parse(m.Groups[1].Value) : 0;
    }

    /// <summary>What the server logged (-v), for failure messages.</summary>
    public string Log => string.Join('\n', _log.Snapshot());

    private bool WaitUntilScanned(int files, TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            try
            {
                string metrics = http.GetStringAsync(new Uri(Url, "metrics")).GetAwaiter().GetResult();
                var scanned = ScannedFiles().Match(metrics);
                if (metrics.Contains("ready 1", StringComparison.Ordinal) && scanned.Success && int.Parse(scanned.Groups[1].Value) >= files) return true;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            Thread.Sleep(50);
        }
        return false;
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill();
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        foreach (string f in new[] { _database, _database + "-wal", _database + "-shm" }) File.Delete(f);
    }

    [GeneratedRegex(@"scanned_files_total\{source=""file""\} (\d+)")]
    private static partial Regex ScannedFiles();
}
