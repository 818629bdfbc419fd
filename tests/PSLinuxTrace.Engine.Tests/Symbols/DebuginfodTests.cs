using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Tests.Cores;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace PSLinuxTrace.Engine.Tests.Symbols;

/// <summary>
/// Debug files and executables fetched from Debian's real debuginfod server (started here over a
/// folder the test fills) by the standard client protocol, into elfutils' cache layout; the frames
/// they give checked against gdb fetching from the same server.
/// </summary>
public sealed class DebuginfodTests(ITestOutputHelper output)
{
    /// <summary>
    /// The -O2 fixture split as a build server publishes it: the stripped program (its .gnu_debuglink names
    /// a file that is not on this machine) in bin/, and in srv/ the debug file and a copy of the program,
    /// for the server. Returns the program, the server's folder and the build-id.
    /// </summary>
    private static (string Exe, string ServerFolder, string BuildId) Published(string name)
    {
        string root = Path.Combine(Fixtures.ScratchDirectory, "debuginfod-" + name);
        string exe = Path.Combine(root, "bin", "inline_crash"), srv = Path.Combine(root, "srv");
        if (!File.Exists(exe))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(exe)!);
            Directory.CreateDirectory(srv);
            string debug = Path.Combine(srv, "inline_crash.debug");
            Tool.Check("objcopy", "--only-keep-debug", SourceLineTests.Program, debug);
            Tool.Check("objcopy", "--strip-debug", $"--add-gnu-debuglink={debug}", SourceLineTests.Program, exe);
            File.Copy(exe, Path.Combine(srv, "inline_crash"));
        }
        using var elf = ElfFile.Open(exe);
        return (exe, srv, elf.BuildIdHex!);
    }

    private static string NewCache() => Path.Combine(Fixtures.ScratchDirectory, $"debuginfod-cache-{Guid.NewGuid():N}");

    private static CoreDump Read(string core, Uri? server, string cache, ILogger log)
    {
        using var client = server is null ? null : new DebuginfodClient([server], cache, TimeSpan.FromSeconds(20), log);
        using var reader = new CoreDumpReader(log, client);
        return reader.Read(core);
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void DebugInfoOnlyOnTheServerGivesGdbsFramesAndIsThenServedFromTheCache()
    {
        var (exe, srv, id) = Published("lines");
        var (_, corePath) = CoreFixtures.Kernel("debuginfod-lines", () => exe, "abort", 2);
        // Without the server, the stripped program has names from .dynsym at best, and no lines.
        var bare = Read(corePath, null, NewCache(), NullLogger.Instance);
        Assert.All(bare.Threads.SelectMany(t => t.Frames).Where(f => f.ModulePath == exe), f => Assert.Null(f.Line));

        string cache = NewCache();
        var log = new ListLogger();
        CoreDump core;
        using (var server = DebuginfodServer.Start(srv))
        {
            core = Read(corePath, server.Url, cache, log);
            Assert.Equal(1, server.Requests("debuginfo"));
            Assert.Equal(0, server.Requests("executable")); // the program is here, and matches
            // gdb, fetching from the same server into a cache of its own, shows the same frames and lines.
            var gdb = ReferenceBacktraces.Gdb(exe, corePath, new Dictionary<string, string>
            {
                ["DEBUGINFOD_URLS"] = server.Url.ToString(), ["DEBUGINFOD_CACHE_PATH"] = NewCache(),
            });
            foreach (var t in core.Threads)
            {
                output.WriteLine(BacktraceComparison.Table($"thread {t.Tid}", gdb[t.Tid], t.Frames));
                Assert.Empty(BacktraceComparison.Differences(gdb[t.Tid], t.Frames));
            }
        }
        Assert.Contains(core.CrashingThread!.Frames, f => f.ModulePath == exe && f.IsInlined && f.Line > 0);
        string cached = Path.Combine(cache, id, "debuginfo");
        Assert.True(File.Exists(cached), $"nothing at {cached}");
        Assert.Contains(log.Messages(LogLevel.Information), m => m.Contains($"fetched the debuginfo of build-id {id} from http://127.0.0.1:", StringComparison.Ordinal) && m.Contains(cached, StringComparison.Ordinal));

        // A later run (a new reader and client, as a new process has): the server is gone, the cache answers.
        var again = new ListLogger();
        var fromCache = Read(corePath, new Uri("http://127.0.0.1:9/"), cache, again);
        Assert.Equal(core.Threads.Select(t => t.Frames), fromCache.Threads.Select(t => t.Frames));
        Assert.Contains(again.Messages(LogLevel.Information), m => m.Contains($"debuginfo of build-id {id} from the cache", StringComparison.Ordinal));
        Assert.DoesNotContain(again.Messages(), m => m.Contains("127.0.0.1:9", StringComparison.Ordinal));
    }

    [PrivilegedFact("a kernel core needs RLIMIT_CORE and core_pattern")]
    public void AnExecutableGoneFromThisMachineComesFromTheServer()
    {
        var (published, srv, id) = Published("executable");
        // The program crashed from a path that is gone by the time the core is read.
        string gone = Path.Combine(Path.GetDirectoryName(published)!, "..", "gone", "inline_crash");
        Directory.CreateDirectory(Path.GetDirectoryName(gone)!);
        var (exe, corePath) = CoreFixtures.Kernel("debuginfod-executable", () => { File.Copy(published, gone, true); return Path.GetFullPath(gone); }, "segv", 1);
        File.Delete(exe);
        string cache = NewCache();
        var log = new ListLogger();
        using var server = DebuginfodServer.Start(srv);
        var core = Read(corePath, server.Url, cache, log);
        var module = core.BuildIds.Single(b => b.Path == exe);
        Assert.Equal(Path.Combine(cache, id, "executable"), module.FoundPath);
        Assert.True(module.Matches);
        Assert.Equal(1, server.Requests("executable"));
        // Named and with lines as gdb names them, once gdb is given the same files.
        var gdb = ReferenceBacktraces.Gdb(module.FoundPath!, corePath, new Dictionary<string, string>
        {
            ["DEBUGINFOD_URLS"] = server.Url.ToString(), ["DEBUGINFOD_CACHE_PATH"] = NewCache(),
        });
        var crashed = core.CrashingThread!;
        output.WriteLine(BacktraceComparison.Table("crashed thread", gdb[crashed.Tid], crashed.Frames));
        Assert.Empty(BacktraceComparison.Differences(gdb[crashed.Tid], crashed.Frames));
        Assert.Contains(crashed.Frames, f => f.Symbol == "ic_crash" && f.Line > 0);
    }

    [Fact]
    public void ABuildIdNoServerHasIsRememberedAsElfutilsRemembersIt()
    {
        var (_, srv, _) = Published("miss");
        string cache = NewCache();
        const string missing = "0123456789abcdef0123456789abcdef01234567";
        using var server = DebuginfodServer.Start(srv);
        using var client = new DebuginfodClient([server.Url], cache, TimeSpan.FromSeconds(20), NullLogger.Instance);
        Assert.Null(client.Fetch(missing, DebuginfodArtifact.DebugInfo));
        Assert.Equal(1, server.Requests("debuginfo"));
        // elfutils' marker: an empty file of mode 000 where the file would be; within cache_miss_s nobody asks again.
        string marker = client.CachedPath(missing, DebuginfodArtifact.DebugInfo);
        Assert.Equal(0, new FileInfo(marker).Length);
        Assert.Equal(UnixFileMode.None, new FileInfo(marker).UnixFileMode & (UnixFileMode)0x1ff);
        Assert.Null(client.Fetch(missing, DebuginfodArtifact.DebugInfo));
        Assert.Equal(1, server.Requests("debuginfo"));
        // elfutils' own client honours the same marker (it fails at once, without asking the server).
        var r = Tool.Run("debuginfod-find", ["debuginfo", missing], environment: new Dictionary<string, string>
        {
            ["DEBUGINFOD_URLS"] = server.Url.ToString(), ["DEBUGINFOD_CACHE_PATH"] = cache,
        });
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(1, server.Requests("debuginfo"));
        // With cache_miss_s 0 the miss is forgotten and the server asked again.
        File.WriteAllText(Path.Combine(cache, "cache_miss_s"), "0");
        Assert.Null(client.Fetch(missing, DebuginfodArtifact.DebugInfo));
        Assert.Equal(2, server.Requests("debuginfo"));
    }

    [Fact]
    public void ElfutilsFindsWhatWeFetchedAndWeFindWhatItFetched()
    {
        var (exe, srv, id) = Published("shared-cache");
        string cache = NewCache();
        using var server = DebuginfodServer.Start(srv);
        using var client = new DebuginfodClient([server.Url], cache, TimeSpan.FromSeconds(20), NullLogger.Instance);
        string ours = client.Fetch(id, DebuginfodArtifact.DebugInfo)!;
        var env = new Dictionary<string, string> { ["DEBUGINFOD_URLS"] = server.Url.ToString(), ["DEBUGINFOD_CACHE_PATH"] = cache };
        // debuginfod-find prints the path of the cached file; served from the cache, the server sees no new request.
        Assert.Equal(ours, Tool.Run("debuginfod-find", ["debuginfo", id], environment: env).StdOut.Trim());
        Assert.Equal(1, server.Requests("debuginfo"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(srv, "inline_crash.debug")), File.ReadAllBytes(ours));
        // The other way: elfutils fetches the executable, we take it from the cache.
        string theirs = Tool.Run("debuginfod-find", ["executable", id], environment: env).StdOut.Trim();
        Assert.Equal(theirs, client.Fetch(id, DebuginfodArtifact.Executable));
        Assert.Equal(1, server.Requests("executable"));
        Assert.Equal(File.ReadAllBytes(exe), File.ReadAllBytes(theirs));
    }

    [Fact]
    public void AServerThatDoesNotAnswerIsLeftAfterTheTimeoutForTheNextOne()
    {
        var (_, srv, id) = Published("timeout");
        // A server that accepts connections and never says a word.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var held = new List<TcpClient>();
        _ = Task.Run(async () => { while (true) { try { held.Add(await silent.AcceptTcpClientAsync()); } catch (Exception) { return; } } });
        var silentUrl = new Uri($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}/");
        using var server = DebuginfodServer.Start(srv);
        var log = new ListLogger();
        using var client = new DebuginfodClient([silentUrl, server.Url], NewCache(), TimeSpan.FromSeconds(1), log);
        var sw = Stopwatch.StartNew();
        Assert.NotNull(client.Fetch(id, DebuginfodArtifact.DebugInfo));
        Assert.InRange(sw.Elapsed.TotalSeconds, 0.9, 15);
        Assert.Contains(log.Messages(LogLevel.Warning), m => m.Contains(silentUrl.Authority, StringComparison.Ordinal) && m.Contains("DEBUGINFOD_TIMEOUT", StringComparison.Ordinal));
        foreach (var c in held) c.Dispose();
    }

    [Fact]
    public void TheEnvironmentIsReadAsElfutilsReadsIt()
    {
        Dictionary<string, string> env = new()
        {
            ["DEBUGINFOD_URLS"] = "  http://a.example/  ftp://b.example https://c.example:8002/x ", ["DEBUGINFOD_TIMEOUT"] = "7",
            ["HOME"] = "/home/u", ["XDG_CACHE_HOME"] = "/xdg",
        };
        var log = new ListLogger();
        using (var client = DebuginfodClient.FromEnvironment(log, env.GetValueOrDefault)!)
        {
            Assert.Equal(new[] { "http://a.example/", "https://c.example:8002/x/" }, client.Servers.Select(u => u.ToString()));
            Assert.Equal(TimeSpan.FromSeconds(7), client.Timeout);
            Assert.Equal("/xdg/debuginfod_client", client.CacheDirectory);
            Assert.Equal("/xdg/debuginfod_client/ab12/debuginfo", client.CachedPath("ab12", DebuginfodArtifact.DebugInfo));
        }
        Assert.Contains(log.Messages(LogLevel.Warning), m => m.Contains("ftp://b.example", StringComparison.Ordinal));
        env.Remove("XDG_CACHE_HOME");
        Assert.Equal("/home/u/.cache/debuginfod_client", DebuginfodClient.CachePath(env.GetValueOrDefault));
        env["DEBUGINFOD_CACHE_PATH"] = "/explicit";
        Assert.Equal("/explicit", DebuginfodClient.CachePath(env.GetValueOrDefault));
        env.Remove("DEBUGINFOD_TIMEOUT");
        using (var client = DebuginfodClient.FromEnvironment(log, env.GetValueOrDefault)!) Assert.Equal(TimeSpan.FromSeconds(90), client.Timeout);
        env["DEBUGINFOD_URLS"] = " ";
        Assert.Null(DebuginfodClient.FromEnvironment(log, env.GetValueOrDefault));
    }
}
