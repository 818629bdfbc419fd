using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>What a core says about its modules, for the symbolizer; and the memory the core left out, from the files that match.</summary>
internal static class CoreModules
{
    // A vDSO is a page or two; more is not one.
    private const ulong MaxVdsoBytes = 1 << 20;

    /// <summary>The NT_FILE mappings, the vDSO's segment (AT_SYSINFO_EHDR; the kernel dumps its image), AT_PHDR and pr_fname.</summary>
    public static ModuleLayout Layout(CoreFile core)
    {
        var mappings = core.Files.Select(f => new ModuleMapping(f.Start, f.End, f.FileOffset, f.Path)).ToList();
        ulong vdso = Auxv(core, ModuleLayout.AT_SYSINFO_EHDR);
        if (vdso != 0 && core.Memory.FindSegment(vdso) is { BytesInFile: > 0 and <= MaxVdsoBytes } segment)
            mappings.Add(new ModuleMapping(segment.Start, segment.End, 0, ModuleLayout.VdsoPath));
        ulong phdr = Auxv(core, ModuleLayout.AT_PHDR);
        return new ModuleLayout(mappings, phdr != 0 ? phdr : null, core.PsInfo?.FileName);
    }

    /// <summary>Makes the file-backed memory the core left out (kernel cores omit text) readable from each module's matching local file, and only from a matching one.</summary>
    public static void SpliceLocalFiles(CoreFile core, ModuleMap map)
    {
        foreach (var module in map.Modules)
        {
            if (!module.Matches || module.Local is null || module.LocalPath is null) continue;
            foreach (var m in module.Mappings)
                core.Memory.AddFile(new CoreAddressSpace.FileRange(m.Start, m.End, m.FileOffset, module.LocalPath), module.Local);
        }
    }

    /// <summary>
    /// For a .NET core: the assemblies the runtime mapped (PE files, which NT_FILE lists but the symbolizer does not
    /// match, having no build-id), from the files at their paths (under <paramref name="sysRoot"/> when given): the
    /// kernel leaves their pages out, and the DAC reads method names from their metadata there. A file shorter than
    /// its mapping is skipped, so a rebuilt assembly of another size cannot be read as the dumped one.
    /// </summary>
    public static void SpliceManagedAssemblies(CoreFile core, ModuleMap map, string? sysRoot)
    {
        foreach (var module in map.Modules)
        {
            if (module.Matches || !module.Path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) continue;
            string local = sysRoot is null ? module.Path : Path.Join(sysRoot, module.Path);
            long size;
            try { size = new FileInfo(local).Length; }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { continue; }
            if (size == 0) continue;
            foreach (var m in module.Mappings)
            {
                if (core.Memory.FindSegment(m.Start) is { BytesInFile: > 0 }) continue; // the core has those pages itself
                if (m.FileOffset + (m.End - m.Start) > (ulong)size + 4095) continue;
                core.Memory.AddFile(new CoreAddressSpace.FileRange(m.Start, m.End, m.FileOffset, local), new FileAtPath(local));
            }
        }
    }

    private static ulong Auxv(CoreFile core, ulong type) => core.Auxv.FirstOrDefault(a => a.Type == type).Value;
}
