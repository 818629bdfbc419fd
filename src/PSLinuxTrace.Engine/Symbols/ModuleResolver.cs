using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// Builds a <see cref="ModuleMap"/>: groups the mappings by file, reads each image's build-id from
/// the address space, finds the matching file on this machine (SysRoot first, -ExecutablePath for the
/// executable, " (deleted)" stripped; a file whose build-id differs is refused with a warning) and
/// its separate debug file (by build-id, then .gnu_debuglink), computes the load bias, and opens the
/// vDSO's image from memory.
/// </summary>
internal sealed class ModuleResolver(ElfFileCache cache, ILogger log, IAddressSpace memory, ModuleSearchOptions search, Action<string> warn, CancellationToken cancel)
{
    public ModuleMap Build(ModuleLayout layout)
    {
        var modules = new List<MappedModule>();
        // GroupBy keeps the order in which each path first appears: the process's own mapping order.
        foreach (var group in layout.Mappings.Where(m => m.Path != ModuleLayout.VdsoPath).GroupBy(m => m.Path))
        {
            foreach (var image in Images(group))
            {
                var module = new MappedModule(group.Key, image);
                module.IsExecutable = layout.ExecutableAddress is { } phdr && image.Any(m => phdr >= m.Start && phdr < m.End);
                modules.Add(module);
            }
        }
        if (!modules.Any(m => m.IsExecutable) && layout.ProgramName is { Length: > 0 } name
            && modules.FirstOrDefault(m => Path.GetFileName(ModuleLayout.StripDeleted(m.Path)).StartsWith(name, StringComparison.Ordinal)) is { } byName)
            byName.IsExecutable = true;

        foreach (var module in modules)
        {
            cancel.ThrowIfCancellationRequested();
            Resolve(module);
        }
        if (layout.Mappings.FirstOrDefault(m => m.Path == ModuleLayout.VdsoPath) is { Path: not null } vdso && Vdso(vdso) is { } v)
            modules.Add(v);
        return new ModuleMap(memory, modules);
    }

    /// <summary>
    /// A path's mappings as the images they make, in address order: each loaded image begins with its
    /// mapping of file offset 0 (the ELF header), so a file mapped twice (loaded in two link-map namespaces,
    /// or also mmapped whole by the process, as a symbolizer in it does) is two modules, each with its own
    /// load bias, not one whose bias comes from whichever mapping is lowest.
    /// </summary>
    private static List<ModuleMapping[]> Images(IEnumerable<ModuleMapping> mappings)
    {
        var images = new List<ModuleMapping[]>();
        var current = new List<ModuleMapping>();
        foreach (var m in mappings.OrderBy(m => m.Start))
        {
            if (m.FileOffset == 0 && current.Count > 0)
            {
                images.Add([.. current]);
                current.Clear();
            }
            current.Add(m);
        }
        if (current.Count > 0) images.Add([.. current]);
        return images;
    }

    private void Resolve(MappedModule module)
    {
        var header = module.Mappings.FirstOrDefault(m => m.FileOffset == 0);
        ElfImage? image = header.Path is null ? null : OpenImage(header.Start, module.Path);
        module.BuildId = image is null ? null : Safe(() => image.BuildIdHex, module.Path, "build-id note");
        FindLocalFile(module);
        if (module.Local is not null)
        {
            if (LoadBiasFinder.Compute(module.Local, module.Mappings.Select(m => (m.Start, m.FileOffset))) is { } bias)
                (module.LoadBias, module.LoadBiasKnown) = (bias, true);
        }
        else if (image is not null)
        {
            (module.LoadBias, module.LoadBiasKnown) = (image.LoadBias, true);
        }
        FindDebugFile(module);
    }

    private void FindLocalFile(MappedModule module)
    {
        string mapped = ModuleLayout.StripDeleted(module.Path);
        string? executableOverride = module.IsExecutable ? search.ExecutablePath : null;
        var candidates = new List<string?>();
        if (executableOverride is not null) candidates.Add(executableOverride);
        if (search.SysRoot is not null) candidates.Add(Path.Join(search.SysRoot, mapped));
        if (executableOverride is null) candidates.Add(mapped);
        candidates.Add(null); // last, when the build-id is known: the file a debuginfod server has for it
        bool notElf = false;
        foreach (string? candidate in candidates)
        {
            if ((candidate ?? Debuginfod(module, DebuginfodArtifact.Executable)) is not { } path) continue;
            if (cache.Open(path) is not { } elf)
            {
                notElf |= candidate is not null && File.Exists(path);
                continue;
            }
            string? local = SafeBuildId(elf);
            if (module.BuildId is not null && local is not null && local != module.BuildId)
            {
                warn($"{path} does not match the file the process mapped as {module.Path} (build-id {local}, its image in memory says {module.BuildId}); its symbols are not used.");
                continue;
            }
            (module.Local, module.LocalPath, module.LocalBuildId, module.Matches) = (elf, path, local, true);
            log.LogDebug("{Path}: using {Local} (build-id {BuildId}).", module.Path, path, local ?? "none");
            return;
        }
        if ((notElf || mapped.StartsWith("/memfd:", StringComparison.Ordinal)) && module.BuildId is null)
        {
            // A file that is no ELF image (a .NET assembly, a locale archive), or memory a memfd holds (the .NET
            // runtime's IPC and double-mapped JIT code): no file to find, and nothing wrong.
            log.LogDebug("{Path}: not an ELF file; no native symbols in it.", module.Path);
            return;
        }
        log.LogInformation("{Path}: no matching file on this machine{Where}; frames in it are not named.", module.Path,
            search.SysRoot is null ? "" : $" or under {search.SysRoot}");
    }

    /// <summary>
    /// The separate debug file as gdb finds it (Dwarf/DebugFileLocator, through the cache): by the build-id the image in memory
    /// carries (else the local file's), then by the local file's .gnu_debuglink; SysRoot first each time.
    /// </summary>
    private void FindDebugFile(MappedModule module)
    {
        string? debug = null;
        if ((module.BuildId ?? module.LocalBuildId) is { } id) debug = cache.DebugFileByBuildId(id, search.SysRoot);
        if (debug is null && module.Local is not null)
            debug = cache.DebugFileByLink(module.Local, ModuleLayout.StripDeleted(module.Path), search.SysRoot);
        if (debug is null && cache.HasDebuginfod && (module.BuildId ?? module.LocalBuildId) is not null)
        {
            // Not here: ask debuginfod, but only once a frame lands in the module.
            module.DebugFileLater(() => Debuginfod(module, DebuginfodArtifact.DebugInfo) is { } fetched && cache.Open(fetched) is { } f ? (f, fetched) : (null, null));
            return;
        }
        if (debug is null || cache.Open(debug) is not { } file) return;
        (module.Debug, module.DebugPath) = (file, debug);
        log.LogDebug("{Path}: symbols from {Debug}.", module.Path, debug);
    }

    /// <summary>The module's file of <paramref name="kind"/> from debuginfod (its build-id as the process's memory or the local file gives it).</summary>
    private string? Debuginfod(MappedModule module, DebuginfodArtifact kind) =>
        (module.BuildId ?? (kind == DebuginfodArtifact.DebugInfo ? module.LocalBuildId : null)) is { } id ? cache.Debuginfod(id, kind, cancel) : null;

    /// <summary>The vDSO is not a file, but its image is in memory (the kernel dumps it, too): symbols and CFI come from there.</summary>
    private MappedModule? Vdso(ModuleMapping mapping)
    {
        if (OpenImage(mapping.Start, ModuleLayout.VdsoPath) is not { } image) return null;
        return new MappedModule(ModuleLayout.VdsoPath, new[] { mapping })
        {
            Image = image,
            Matches = true,
            BuildId = Safe(() => image.BuildIdHex, ModuleLayout.VdsoPath, "build-id note"),
            LoadBias = image.LoadBias,
            LoadBiasKnown = true,
        };
    }

    private ElfImage? OpenImage(ulong address, string name)
    {
        try
        {
            return ElfImage.FromAddressSpace(memory, address, name);
        }
        catch (BadInputFormatException ex)
        {
            log.LogDebug("{Path}: no readable ELF image in memory: {Message}", name, ex.Message);
            return null;
        }
    }

    private T? Safe<T>(Func<T?> read, string name, string what)
    {
        try
        {
            return read();
        }
        catch (BadInputFormatException ex)
        {
            log.LogDebug("{Path}: damaged {What} in memory: {Message}", name, what, ex.Message);
            return default;
        }
    }

    internal static string? SafeBuildId(ElfFile elf)
    {
        try { return elf.BuildIdHex; }
        catch (BadInputFormatException) { return null; }
    }
}
