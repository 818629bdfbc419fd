using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Unwind;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// ELF files opened for symbols and CFI, keyed by path and checked by modification time and size on
/// every reuse, with their call frame information indexed once: a symbolizer's cache, so that libc is
/// parsed once per cmdlet invocation however many processes or cores it serves. A file replaced on
/// disk is opened again; the old copy stays open until <see cref="Dispose"/>, since module maps made
/// before may still read it.
/// </summary>
internal sealed class ElfFileCache(ILogger log) : IDisposable
{
    private readonly Dictionary<string, (DateTime Stamp, long Length, ElfFile? File)> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<ElfFile, CallFrameInfo?> _cfi = new();
    private readonly List<ElfFile> _retired = new();
    // Where each module's debug file was found (or not): DebugFileLocator opens every candidate to check
    // it, so each build-id, and each file's debug link, is looked up once per cache.
    private readonly Dictionary<(string BuildId, string? SysRoot), string?> _debugById = new();
    private readonly Dictionary<(ElfFile File, string? SysRoot), string?> _debugByLink = new();

    /// <summary>Files parsed so far (a reopened file counts again).</summary>
    public int FilesOpened { get; private set; }

    /// <summary>Opens (or reuses) an ELF file; null when it is missing, unreadable or not readable ELF.</summary>
    public ElfFile? Open(string path)
    {
        // A damaged NT_FILE can name a file "" (FileInfo throws ArgumentException on it).
        if (string.IsNullOrEmpty(path) || path.Contains('\0')) return null;
        DateTime stamp;
        long length;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) return null;
            (stamp, length) = (info.LastWriteTimeUtc, info.Length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return null;
        }
        if (_files.TryGetValue(path, out var cached))
        {
            if (cached.Stamp == stamp && cached.Length == length) return cached.File;
            if (cached.File is not null) _retired.Add(cached.File);
        }
        ElfFile? elf = null;
        try
        {
            elf = ElfFile.Open(path);
            FilesOpened++;
        }
        catch (Exception ex) when (ex is BadInputFormatException or IOException or UnauthorizedAccessException)
        {
            log.LogDebug("{Path}: not usable: {Message}", path, ex.Message);
        }
        _files[path] = (stamp, length, elf);
        return elf;
    }

    /// <summary>The file's .eh_frame and .debug_frame, indexed once; null when it has none or they are unreadable.</summary>
    public CallFrameInfo? CfiOf(ElfFile? elf)
    {
        if (elf is null) return null;
        if (_cfi.TryGetValue(elf, out var cfi)) return cfi;
        try
        {
            cfi = CallFrameInfo.Load(elf);
        }
        catch (BadInputFormatException ex)
        {
            log.LogWarning("{Path}: unreadable call frame information ({Message}); using frame pointers there.", elf.Name, ex.Message);
        }
        return _cfi[elf] = cfi;
    }

    /// <summary>DebugFileLocator.FindByBuildId, remembered.</summary>
    public string? DebugFileByBuildId(string buildId, string? sysRoot)
    {
        if (!_debugById.TryGetValue((buildId, sysRoot), out string? path))
            _debugById[(buildId, sysRoot)] = path = DebugFileLocator.FindByBuildId(buildId, sysRoot);
        return path;
    }

    /// <summary>DebugFileLocator.FindByDebugLink for <paramref name="local"/>, mapped as <paramref name="modulePath"/>, remembered.</summary>
    public string? DebugFileByLink(ElfFile local, string modulePath, string? sysRoot)
    {
        if (!_debugByLink.TryGetValue((local, sysRoot), out string? path))
            _debugByLink[(local, sysRoot)] = path = DebugFileLocator.FindByDebugLink(local, modulePath, sysRoot);
        return path;
    }

    public void Dispose()
    {
        foreach (var (_, _, file) in _files.Values) file?.Dispose();
        foreach (var file in _retired) file.Dispose();
        _files.Clear();
        _retired.Clear();
        _cfi.Clear();
        _debugById.Clear();
        _debugByLink.Clear();
    }
}
