using System.Buffers.Binary;
using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// One mapping of a file into a process: [Start, End) holds the file from <see cref="FileOffset"/> on.
/// <see cref="Path"/> is spelled as the kernel spells it in NT_FILE and /proc/PID/maps, " (deleted)"
/// included; the vDSO is the one pseudo-file, named <see cref="ModuleLayout.VdsoPath"/>.
/// </summary>
public readonly record struct ModuleMapping(ulong Start, ulong End, ulong FileOffset, string Path);

/// <summary>
/// What a process says about the files it mapped: the mappings (a core's NT_FILE note, or a live
/// process's /proc/PID/maps), and the auxiliary vector's AT_PHDR, which marks the executable.
/// </summary>
/// <param name="Mappings">every file mapping, in address order, plus the vDSO's when there is one</param>
/// <param name="ExecutableAddress">AT_PHDR: an address inside the executable's mappings, or null</param>
/// <param name="ProgramName">the process's name (a core's pr_fname), to find the executable without AT_PHDR</param>
public sealed record ModuleLayout(IReadOnlyList<ModuleMapping> Mappings, ulong? ExecutableAddress = null, string? ProgramName = null)
{
    /// <summary>The vDSO's name in /proc/PID/maps; its image is read from memory.</summary>
    public const string VdsoPath = "[vdso]";

    // getauxval(3) types (linux/auxvec.h).
    internal const ulong AT_PHDR = 3, AT_SYSINFO_EHDR = 33;

    /// <summary>
    /// A live process's layout: its file mappings and vDSO from /proc/PID/maps, AT_PHDR from
    /// /proc/PID/auxv. ProcessNotFoundException or TargetPermissionDeniedException as ProcFs raises them.
    /// </summary>
    public static ModuleLayout FromProcess(int pid) =>
        FromMaps(ProcFs.ReadMaps(pid), ProcFs.ReadBytes(pid, "auxv"), ProcFs.ReadComm(pid));

    /// <summary>A live process's layout from what was read of it: its mappings, its auxv and its name.</summary>
    public static ModuleLayout FromMaps(IEnumerable<MemoryMapping> maps, byte[] auxv, string? programName)
    {
        var mappings = new List<ModuleMapping>();
        foreach (var m in maps)
        {
            // Loaded code is mapped private; a shared mapping of an ELF file is one being read (a symbolizer's
            // own mmap, in this very process), not run.
            if (m.Kind == MappingKind.File && m.Path is not null && m.IsPrivate)
                mappings.Add(new ModuleMapping(m.Start, m.End, m.Offset, m.IsDeleted ? m.Path + DeletedSuffix : m.Path));
            else if (m.Kind == MappingKind.Vdso)
                mappings.Add(new ModuleMapping(m.Start, m.End, 0, VdsoPath));
        }
        ulong? phdr = null;
        for (int i = 0; i + 16 <= auxv.Length; i += 16)
            if (BinaryPrimitives.ReadUInt64LittleEndian(auxv.AsSpan(i)) == AT_PHDR) phdr = BinaryPrimitives.ReadUInt64LittleEndian(auxv.AsSpan(i + 8));
        return new ModuleLayout(mappings, phdr, programName);
    }

    internal const string DeletedSuffix = " (deleted)";

    /// <summary>The path without the kernel's " (deleted)" mark.</summary>
    internal static string StripDeleted(string path) => path.EndsWith(DeletedSuffix, StringComparison.Ordinal) ? path[..^DeletedSuffix.Length] : path;
}

/// <summary>Where to look for the files a process mapped (Read-CoreDump's -SysRoot and -ExecutablePath).</summary>
public sealed record ModuleSearchOptions
{
    /// <summary>A copy of the target's filesystem: mapped files and /usr/lib/debug are looked up there first.</summary>
    public string? SysRoot { get; init; }
    /// <summary>The executable to use instead of the path the process mapped it from.</summary>
    public string? ExecutablePath { get; init; }
}
