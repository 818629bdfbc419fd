using System.Net;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>What a debuginfod server serves for a build-id (debuginfod(8), "WEBAPI").</summary>
public enum DebuginfodArtifact
{
    /// <summary>GET /buildid/ID/debuginfo: the separate debug file.</summary>
    DebugInfo,
    /// <summary>GET /buildid/ID/executable: the executable or shared library itself.</summary>
    Executable,
}

/// <summary>
/// A debuginfod client as gdb and elfutils have one (debuginfod-client-config(7)): the servers
/// DEBUGINFOD_URLS lists (space-separated, asked in turn), each file kept in the cache elfutils' own
/// client uses (DEBUGINFOD_CACHE_PATH, else $XDG_CACHE_HOME/debuginfod_client, else
/// ~/.cache/debuginfod_client; as CACHE/BUILDID/debuginfo and CACHE/BUILDID/executable), so either
/// client finds what the other fetched. A failed query is remembered for cache_miss_s (600 s) with
/// elfutils' marker, an empty file of mode 000; DEBUGINFOD_TIMEOUT (90 s) bounds how long a server may
/// take to send each 100 KiB. Every download is checked to carry the build-id asked for. Cleaning the
/// cache is left to elfutils' client (it cleans on its own schedule).
/// </summary>
public sealed class DebuginfodClient : IDisposable
{
    private const int StallWindowBytes = 100 << 10;
    private const long DefaultCacheMissSeconds = 600;
    private readonly HttpClient _http;
    private readonly ILogger _log;

    public DebuginfodClient(IReadOnlyList<Uri> servers, string cacheDirectory, TimeSpan timeout, ILogger log)
    {
        Servers = servers;
        CacheDirectory = cacheDirectory;
        Timeout = timeout;
        _log = log;
        var handler = new SocketsHttpHandler { ConnectTimeout = timeout > TimeSpan.Zero ? timeout : System.Threading.Timeout.InfiniteTimeSpan, AutomaticDecompression = DecompressionMethods.None };
        _http = new HttpClient(handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd($"PSLinuxTrace/{typeof(DebuginfodClient).Assembly.GetName().Version?.ToString(3) ?? "0"}");
    }

    public IReadOnlyList<Uri> Servers { get; }
    public string CacheDirectory { get; }
    /// <summary>How long a server may take to answer, and to send each further 100 KiB; zero or less: no limit.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// The client DEBUGINFOD_URLS asks for (read through <paramref name="environment"/>, the process's
    /// environment by default), or null when it names no http or https server.
    /// </summary>
    public static DebuginfodClient? FromEnvironment(ILogger log, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var servers = new List<Uri>();
        foreach (string url in (environment("DEBUGINFOD_URLS") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https") servers.Add(uri);
            else log.LogWarning("DEBUGINFOD_URLS: '{Url}' is not an http or https URL; it is not used.", url);
        }
        if (servers.Count == 0) return null;
        var timeout = TimeSpan.FromSeconds(90);
        if (environment("DEBUGINFOD_TIMEOUT") is { Length: > 0 } t && long.TryParse(t, out long seconds)) timeout = TimeSpan.FromSeconds(Math.Clamp(seconds, -1, 86400));
        return new DebuginfodClient(servers, CachePath(environment), timeout, log);
    }

    /// <summary>elfutils' choice of cache directory (debuginfod-client-config(7)).</summary>
    public static string CachePath(Func<string, string?> environment)
    {
        if (environment("DEBUGINFOD_CACHE_PATH") is { Length: > 0 } explicitPath) return explicitPath;
        string home = environment("HOME") is { Length: > 0 } h ? h : "/";
        string deprecated = Path.Join(home, ".debuginfod_client_cache");
        if (Directory.Exists(deprecated)) return deprecated;
        if (environment("XDG_CACHE_HOME") is { Length: > 0 } xdg) return Path.Join(xdg, "debuginfod_client");
        return Path.Join(home, ".cache", "debuginfod_client");
    }

    /// <summary>Where the cache keeps <paramref name="kind"/> of <paramref name="buildId"/> (lowercase hex).</summary>
    public string CachedPath(string buildId, DebuginfodArtifact kind) =>
        Path.Join(CacheDirectory, buildId, kind == DebuginfodArtifact.DebugInfo ? "debuginfo" : "executable");

    /// <summary>
    /// The file <paramref name="kind"/> of <paramref name="buildId"/>: from the cache, else downloaded
    /// from the first server that has it (into the cache); null when none has it or none answers.
    /// </summary>
    public string? Fetch(string buildId, DebuginfodArtifact kind, CancellationToken cancel = default)
    {
        if (buildId.Length < 2 || buildId.Length > 128 || !buildId.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f')) return null;
        string target = CachedPath(buildId, kind);
        try
        {
            if (File.Exists(target))
            {
                if (!IsMissMarker(target))
                {
                    _log.LogInformation("debuginfod: {Kind} of build-id {BuildId} from the cache, {Path}.", Name(kind), buildId, target);
                    return target;
                }
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(target) <= CacheMissTime())
                {
                    _log.LogDebug("debuginfod: {Kind} of build-id {BuildId}: no server had it a short while ago (cache_miss_s).", Name(kind), buildId);
                    return null;
                }
                File.Delete(target);
            }
            InitializeCache();
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _log.LogWarning("debuginfod: the cache {Cache} is not usable ({Message}); nothing is fetched.", CacheDirectory, ex.Message);
            return null;
        }
        bool allMissing = true;
        foreach (var server in Servers)
        {
            cancel.ThrowIfCancellationRequested();
            var url = new Uri(server, $"buildid/{buildId}/{Name(kind)}");
            var outcome = Download(url, target, buildId, kind, cancel);
            if (outcome == Outcome.Fetched) return target;
            allMissing &= outcome == Outcome.NotFound;
        }
        if (allMissing) RememberMiss(target);
        return null;
    }

    private enum Outcome { Fetched, NotFound, Failed }

    /// <summary>One GET into a temporary file beside the target, renamed into place once complete and checked.</summary>
    private Outcome Download(Uri url, string target, string buildId, DebuginfodArtifact kind, CancellationToken cancel)
    {
        string temp = $"{target}.{Guid.NewGuid():N}.tmp";
        var started = DateTime.UtcNow;
        try
        {
            long bytes;
            using (var window = CancellationTokenSource.CreateLinkedTokenSource(cancel))
            {
                if (Timeout > TimeSpan.Zero) window.CancelAfter(Timeout);
                using var response = _http.Send(new HttpRequestMessage(HttpMethod.Get, url), HttpCompletionOption.ResponseHeadersRead, window.Token);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    _log.LogDebug("debuginfod: {Url}: not found.", url);
                    return Outcome.NotFound;
                }
                if (!response.IsSuccessStatusCode)
                {
                    _log.LogWarning("debuginfod: {Url}: HTTP {Status} {Reason}.", url, (int)response.StatusCode, response.ReasonPhrase);
                    return Outcome.Failed;
                }
                bytes = Copy(response.Content.ReadAsStream(window.Token), temp, window);
            }
            if (!CarriesBuildId(temp, buildId))
            {
                _log.LogWarning("debuginfod: {Url} sent a file without build-id {BuildId}; it is not used.", url, buildId);
                return Outcome.Failed;
            }
            File.Move(temp, target, overwrite: true);
            _log.LogInformation("debuginfod: fetched the {Kind} of build-id {BuildId} from {Url} ({Bytes} bytes, {Ms} ms) into {Path}.",
                Name(kind), buildId, url, bytes, (long)(DateTime.UtcNow - started).TotalMilliseconds, target);
            return Outcome.Fetched;
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            _log.LogWarning("debuginfod: {Url} sent less than 100 KiB in {Seconds} s (DEBUGINFOD_TIMEOUT); skipped.", url, Timeout.TotalSeconds);
            return Outcome.Failed;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or UnauthorizedAccessException)
        {
            _log.LogWarning("debuginfod: {Url}: {Message}", url, ex.Message);
            return Outcome.Failed;
        }
        finally
        {
            try { File.Delete(temp); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
    }

    /// <summary>The body into <paramref name="path"/>; each 100 KiB restarts <paramref name="window"/>'s timeout.</summary>
    private long Copy(Stream body, string path, CancellationTokenSource window)
    {
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        var buffer = new byte[1 << 16];
        long total = 0, windowStart = 0;
        while (true)
        {
            int n = body.ReadAsync(buffer, window.Token).AsTask().GetAwaiter().GetResult();
            if (n == 0) return total;
            file.Write(buffer, 0, n);
            total += n;
            if (total - windowStart >= StallWindowBytes && Timeout > TimeSpan.Zero)
            {
                // A later CancelAfter restarts the delay (as long as it has not run out).
                windowStart = total;
                window.CancelAfter(Timeout);
            }
        }
    }

    private static bool CarriesBuildId(string path, string buildId)
    {
        try
        {
            using var elf = ElfFile.Open(path);
            return elf.BuildIdHex == buildId;
        }
        catch (BadInputFormatException)
        {
            return false;
        }
    }

    /// <summary>elfutils' marker of a failed query: an empty file of mode 000 (checked by mode, since root can read it).</summary>
    private static bool IsMissMarker(string path) =>
        !OperatingSystem.IsWindows() && new FileInfo(path).Length == 0 && (File.GetUnixFileMode(path) & (UnixFileMode)0x1ff) == UnixFileMode.None;

    private void RememberMiss(string target)
    {
        try
        {
            if (OperatingSystem.IsWindows()) return;
            using (File.Create(target)) { }
            File.SetUnixFileMode(target, UnixFileMode.None);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    private TimeSpan CacheMissTime() => TimeSpan.FromSeconds(ControlValue("cache_miss_s", DefaultCacheMissSeconds));

    /// <summary>The control files elfutils' client creates with the cache, with its defaults.</summary>
    private void InitializeCache()
    {
        Directory.CreateDirectory(CacheDirectory);
        foreach (var (name, value) in new[] { ("cache_clean_interval_s", 86400L), ("max_unused_age_s", 604800L) })
        {
            string path = Path.Join(CacheDirectory, name);
            if (!File.Exists(path)) File.WriteAllText(path, value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private long ControlValue(string name, long fallback)
    {
        try
        {
            string path = Path.Join(CacheDirectory, name);
            return File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), out long v) ? Math.Max(0, v) : fallback;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return fallback;
        }
    }

    private static string Name(DebuginfodArtifact kind) => kind == DebuginfodArtifact.DebugInfo ? "debuginfo" : "executable";

    public void Dispose() => _http.Dispose();
}
