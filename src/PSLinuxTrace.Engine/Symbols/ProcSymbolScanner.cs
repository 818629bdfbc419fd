using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Text;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>What to look for: symbol name patterns, an optional file glob, optional pids.</summary>
public sealed class ProcSymbolQuery
{
    public ProcSymbolQuery(IEnumerable<string> names, IEnumerable<string>? pathPatterns = null)
    {
        Names = names.Select(n => new Glob(n)).ToArray();
        if (Names.Length == 0) throw new ArgumentException("At least one symbol name is required.", nameof(names));
        PathPatterns = pathPatterns?.Select(p => new Glob(p)).ToArray() ?? Array.Empty<Glob>();
    }

    public Glob[] Names { get; }
    public Glob[] PathPatterns { get; }

    /// <summary>
    /// True when the mapped file's path passes -Path: a pattern with a '/' is matched against the
    /// whole path, one without against the file name. No patterns: every file.
    /// </summary>
    public bool PathMatches(string path)
    {
        if (PathPatterns.Length == 0) return true;
        string fileName = Path.GetFileName(path);
        foreach (var g in PathPatterns)
            if (g.IsMatch(g.Pattern.Contains('/') ? path : fileName)) return true;
        return false;
    }
}

/// <summary>
/// Finds symbols in running processes: reads /proc/PID/maps, opens each distinct mapped ELF file
/// (by device and inode) once through /proc/PID/map_files or /proc/PID/root, looks the names up in
/// .dynsym and .symtab (hash lookups for exact names), and adds each mapping's load bias, computed
/// from the program header that holds the mapping's file offset. Dispose releases the mapped files.
/// One instance is one cache: reuse it across pids of one command, and across -Watch passes.
/// </summary>
public sealed class ProcSymbolScanner : IDisposable
{
    private readonly ILogger _log;
    private readonly Dictionary<(ulong dev, ulong inode), ModuleInfo?> _modules = new();

    public ProcSymbolScanner(ILogger log) => _log = log;

    /// <summary>Files opened (parsed) so far: one per distinct (device, inode).</summary>
    public int FilesParsed { get; private set; }

    /// <summary>Processes whose mappings were read so far, and the mapped files of theirs that passed -Path.</summary>
    public int ProcessesScanned { get; private set; }
    public int FilesMatchingPath { get; private set; }

    /// <summary>
    /// Processes a scan of every process (no pids named) skipped because we may not read them
    /// (pid 1 holding a capability we lack, another user's process without CAP_SYS_PTRACE...),
    /// each logged once at Information level with the reason. A scan of named pids reports them
    /// through its error callback instead.
    /// </summary>
    public IReadOnlyCollection<int> Unreadable => _unreadable;
    private readonly HashSet<int> _unreadable = new();

    private sealed class ModuleInfo(ElfFile elf, string? buildId) : IDisposable
    {
        public ElfFile Elf { get; } = elf;
        public string? BuildId { get; } = buildId;
        public Dictionary<Glob, List<(ElfSymbol sym, string source)>> Matches { get; } = new();
        public void Dispose() => Elf.Dispose();
    }

    /// <summary>
    /// Scans the given pids (null: every process). Errors for one process go to
    /// <paramref name="onError"/> (a missing pid named explicitly: ProcessNotFoundException;
    /// permission: TargetPermissionDeniedException); a process that exits while it is scanned is
    /// skipped with a log line, and so (with null pids) is one we may not read (see <see cref="Unreadable"/>).
    /// Yields results process by process, in pid order.
    /// </summary>
    public IEnumerable<ProcSymbol> Scan(ProcSymbolQuery query, IEnumerable<int>? pids, Action<LinuxTraceException, int> onError, CancellationToken cancel = default)
    {
        bool explicitPids = pids is not null;
        foreach (int pid in pids ?? ProcFs.ListProcesses())
        {
            if (cancel.IsCancellationRequested) yield break;
            List<ProcSymbol>? found = null;
            try
            {
                found = ScanProcess(query, pid);
            }
            catch (ProcessNotFoundException ex)
            {
                if (explicitPids) onError(ex, pid);
                else _log.LogInformation("Process {Pid} exited while it was scanned; skipped.", pid);
            }
            catch (TargetPermissionDeniedException ex) when (!explicitPids)
            {
                // The user named no process: those we may not read are not an error, only a count.
                if (_unreadable.Add(pid)) _log.LogInformation("Skipped process {Pid}: {Reason}", pid, ex.Message);
            }
            catch (LinuxTraceException ex)
            {
                onError(ex, pid);
            }
            if (found is null) continue;
            foreach (var s in found) yield return s;
        }
    }

    private List<ProcSymbol> ScanProcess(ProcSymbolQuery query, int pid)
    {
        var result = new List<ProcSymbol>();
        List<MemoryMapping> maps;
        try
        {
            maps = ProcFs.ReadMaps(pid);
        }
        catch (ProcessNotFoundException)
        {
            throw;
        }
        if (maps.Count == 0)
        {
            // Kernel threads and zombies have no mappings: nothing to find, and nothing wrong.
            if (!ProcFs.Exists(pid)) throw new ProcessNotFoundException(pid);
            _log.LogDebug("Process {Pid} has no memory mappings (kernel thread or zombie).", pid);
            return result;
        }
        ProcessesScanned++;
        string? processName = null;
        // Group the mappings by file; each (dev, inode) once per process, with its lowest mapping first.
        var seen = new HashSet<(ulong, ulong)>();
        foreach (var m in maps)
        {
            // Loaded code is mapped private; a shared mapping of an ELF file is one being read (our own
            // reader's mmap in this very process, say), not run.
            if (m.Kind != MappingKind.File || m.Inode == 0 || m.Path is null || !m.IsPrivate) continue;
            var key = (m.Device, m.Inode);
            if (!seen.Add(key)) continue;
            if (!query.PathMatches(m.Path)) continue;
            FilesMatchingPath++;
            var module = GetModule(pid, m, key);
            if (module is null) continue;
            var matches = Match(module, query);
            if (matches.Count == 0) continue;
            ulong? bias = LoadBias(module.Elf, maps, m);
            if (bias is null)
            {
                _log.LogDebug("{Path} in process {Pid}: no mapping of it lies in a PT_LOAD segment; skipped.", m.Path, pid);
                continue;
            }
            processName ??= ProcessName(pid);
            foreach (var (sym, source) in matches)
            {
                ulong address = sym.Kind == ElfSymbolKind.Tls || sym.SectionIndex == ElfSection.SHN_ABS ? sym.Value : bias.Value + sym.Value;
                result.Add(new ProcSymbol(pid, processName, sym.Name, address, sym.Size, sym.Kind, sym.Binding, source, sym.Version,
                    m.Path, bias.Value, module.BuildId, m.IsDeleted));
            }
        }
        return result;
    }

    private string ProcessName(int pid)
    {
        try
        {
            return ProcFs.ReadComm(pid);
        }
        catch (LinuxTraceException)
        {
            return "";
        }
    }

    /// <summary>The load bias of the file mapped by the mappings of (dev, inode) in this process.</summary>
    internal static ulong? LoadBias(ElfFile elf, List<MemoryMapping> maps, MemoryMapping first) =>
        LoadBiasFinder.Compute(elf, maps.Where(m => m.Inode == first.Inode && m.Device == first.Device && m.Kind == MappingKind.File)
            .Select(m => (m.Start, m.Offset)));

    private ModuleInfo? GetModule(int pid, MemoryMapping m, (ulong, ulong) key)
    {
        if (_modules.TryGetValue(key, out var cached)) return cached;
        ModuleInfo? info = null;
        // map_files reaches the very inode mapped (deleted, replaced, or in another mount namespace);
        // /proc/PID/root/path reaches the path in the process's own mount namespace.
        string viaMapFiles = $"{ProcFs.Root}/{pid}/map_files/{m.MapFilesName}";
        string viaRoot = $"{ProcFs.Root}/{pid}/root{m.Path}";
        foreach (string path in m.IsDeleted ? new[] { viaMapFiles } : new[] { viaMapFiles, viaRoot })
        {
            try
            {
                var elf = ElfFile.Open(path);
                if (elf.Header.Machine != ElfHeader.EM_X86_64 && elf.Header.Machine != ElfHeader.EM_AARCH64)
                    _log.LogDebug("{Path}: machine {Machine} is not this machine's; read anyway.", m.Path, elf.Header.Machine);
                info = new ModuleInfo(elf, SafeBuildId(elf, m.Path!));
                FilesParsed++;
                break;
            }
            catch (BadInputFormatException ex)
            {
                // Not ELF (locale archives, fonts, caches ...) or damaged: not a module.
                _log.LogDebug("{Path} is not a readable ELF file: {Message}", m.Path, ex.Message);
                break;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _log.LogDebug("Cannot open {Via}: {Message}", path, ex.Message);
                if (!ProcFs.Exists(pid)) throw new ProcessNotFoundException(pid);
            }
        }
        // /proc/PID/maps can be readable where /proc/PID/root is not (mm_access lets CAP_PERFMON read a
        // process's memory map, kernel/fork.c; the root link needs ptrace access): then no module of the
        // process can be opened, which is a refusal to say, not an empty result.
        if (info is null && RootLinkDenied(pid))
            throw Access.AccessDiagnosis.Explain(pid, $"reading {ProcFs.Root}/{pid}/root (to open {m.Path})", Interop.Errno.EACCES);
        // A file we could not open is not cached: another process may be able to show it to us.
        if (info is not null || !m.IsDeleted) _modules[key] = info;
        return info;
    }

    // readlink of /proc/PID/root fails (EACCES) when ptrace_may_access refuses us (fs/proc/base.c proc_root_link).
    private static bool RootLinkDenied(int pid)
    {
        try { return new FileInfo($"{ProcFs.Root}/{pid}/root").LinkTarget is null && ProcFs.Exists(pid); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return true; }
    }

    private string? SafeBuildId(ElfFile elf, string path)
    {
        try
        {
            return elf.BuildIdHex;
        }
        catch (BadInputFormatException ex)
        {
            _log.LogDebug("{Path}: cannot read the build-id note: {Message}", path, ex.Message);
            return null;
        }
    }

    private List<(ElfSymbol, string)> Match(ModuleInfo module, ProcSymbolQuery query)
    {
        var all = new List<(ElfSymbol, string)>();
        foreach (var name in query.Names)
        {
            if (!module.Matches.TryGetValue(name, out var list))
            {
                list = FindInFile(module.Elf, name);
                module.Matches[name] = list;
            }
            all.AddRange(list);
        }
        return all;
    }

    private List<(ElfSymbol, string)> FindInFile(ElfFile elf, Glob name)
    {
        var list = new List<(ElfSymbol, string)>();
        var seen = new HashSet<(string, ulong)>();
        try
        {
            foreach (var (table, source) in new[] { (elf.DynamicSymbols, "dynsym"), (elf.SymbolTable, "symtab") })
            {
                if (table is null) continue;
                if (!name.HasWildcards)
                {
                    var s = table.Lookup(name.Literal!);
                    if (s is not null && IsAddressable(s) && seen.Add((s.Name, s.Value))) list.Add((s, source));
                    continue;
                }
                // Wildcards: every defined symbol whose name matches, the default version of each name.
                var best = new Dictionary<string, ElfSymbol>(StringComparer.Ordinal);
                foreach (var s in table.All)
                {
                    if (!IsAddressable(s) || s.Name.Length == 0 || !name.IsMatch(s.Name)) continue;
                    if (!best.TryGetValue(s.Name, out var b) || Better(s, b)) best[s.Name] = s;
                }
                foreach (var s in best.Values.OrderBy(s => s.Name, StringComparer.Ordinal))
                    if (seen.Add((s.Name, s.Value))) list.Add((s, source));
            }
        }
        catch (BadInputFormatException ex)
        {
            _log.LogWarning("{File}: damaged symbol table, skipped: {Message}", elf.Name, ex.Message);
        }
        return list;
    }

    private static bool IsAddressable(ElfSymbol s) =>
        s.IsDefined && s.Kind is not (ElfSymbolKind.Section or ElfSymbolKind.File) && s.SectionIndex != ElfSection.SHN_COMMON;

    private static bool Better(ElfSymbol a, ElfSymbol b)
    {
        if (a.IsDefaultVersion != b.IsDefaultVersion) return a.IsDefaultVersion;
        return a.Binding == ElfSymbolBinding.Global && b.Binding != ElfSymbolBinding.Global;
    }

    /// <summary>
    /// Symbol names from the files mapped by the given processes (filtered by the query's -Path),
    /// for tab completion: names starting with / matching <paramref name="pattern"/>, sorted, at most <paramref name="limit"/>.
    /// </summary>
    public List<string> CompleteNames(string pattern, IEnumerable<string>? pathPatterns, IEnumerable<int>? pids, int maxFiles = 64, int limit = 500)
    {
        var glob = new Glob(Glob.ContainsWildcards(pattern) ? pattern : pattern + "*");
        var query = new ProcSymbolQuery(new[] { "*" }, pathPatterns);
        var names = new SortedSet<string>(StringComparer.Ordinal);
        var files = new HashSet<(ulong, ulong)>();
        foreach (int pid in pids ?? ProcFs.ListProcesses())
        {
            List<MemoryMapping> maps;
            try { maps = ProcFs.ReadMaps(pid); }
            catch (LinuxTraceException) { continue; }
            foreach (var m in maps)
            {
                if (m.Kind != MappingKind.File || m.Path is null || m.Inode == 0 || !query.PathMatches(m.Path)) continue;
                var key = (m.Device, m.Inode);
                if (!files.Add(key)) continue;
                ModuleInfo? module;
                try { module = GetModule(pid, m, key); }
                catch (LinuxTraceException) { continue; }
                if (module is null) continue;
                try
                {
                    foreach (var table in new[] { module.Elf.DynamicSymbols, module.Elf.SymbolTable })
                        if (table is not null)
                            foreach (var s in table.All)
                                if (IsAddressable(s) && s.Name.Length > 0 && glob.IsMatch(s.Name)) names.Add(s.Name);
                }
                catch (BadInputFormatException) { }
                if (files.Count >= maxFiles || names.Count >= limit * 4) break;
            }
            if (files.Count >= maxFiles || names.Count >= limit * 4) break;
        }
        return names.Take(limit).ToList();
    }

    public void Dispose()
    {
        foreach (var m in _modules.Values) m?.Dispose();
        _modules.Clear();
    }
}
