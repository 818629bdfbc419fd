using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// The door to managed frames, with no ClrMD type in it: a target whose modules hold no libcoreclr.so
/// gets null here. A .NET target gets a frame source over the DAC that ships next to its libcoreclr.so,
/// run by ClrMD in the worker process (pslinuxtrace-clrmd), so ClrMD's assembly is never loaded in the
/// user's process; anything that goes wrong there is a warning, and the native frames stay as they are.
/// </summary>
public static class ManagedStacks
{
    public const string RuntimeFileName = "libcoreclr.so", DacFileName = "libmscordaccore.so";
    private static int _opened;

    /// <summary>How many times this process had the ClrMD worker open a target's runtime (for tests of laziness).</summary>
    public static int RuntimesOpened => _opened;

    /// <summary>The target's CoreCLR (libcoreclr.so in its module list), or null for a process that runs no .NET.</summary>
    public static MappedModule? FindRuntime(ModuleMap map)
    {
        foreach (var m in map.Modules)
            if (m.Path.EndsWith("/" + RuntimeFileName, StringComparison.Ordinal)) return m;
        return null;
    }

    /// <summary>
    /// The managed frames of a target that runs .NET, or null (no runtime, no matching DAC, ClrMD failed:
    /// each but the first says why to <paramref name="warn"/>).
    /// </summary>
    internal static IManagedFrameSource? TryOpen(string name, int pid, ModuleMap map, IAddressSpace memory,
        IReadOnlyDictionary<int, X64Registers> registers, string? sysRoot, Action<string> warn, ILogger log)
    {
        if (FindRuntime(map) is not { } clr) return null;
        if (!clr.Matches || clr.LocalPath is null)
        {
            warn($"{clr.Path}: this machine does not have the .NET runtime build the target ran (no file with its build-id); managed frames are not shown.");
            return null;
        }
        string dac = Path.Join(Path.GetDirectoryName(clr.LocalPath), DacFileName);
        if (!File.Exists(dac))
        {
            warn($"{dac} is missing (it ships next to {RuntimeFileName} in the shared framework); managed frames are not shown.");
            return null;
        }
        try
        {
            var opening = System.Diagnostics.Stopwatch.StartNew();
            var source = OpenClrMd(name, pid, memory, map, registers, dac, sysRoot, warn, log);
            Interlocked.Increment(ref _opened);
            log.LogDebug("{Name}: managed frames through ClrMD with {Dac} (opened in {Ms:F1} ms).", name, dac, opening.Elapsed.TotalMilliseconds);
            return source;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // ClrMD and the DAC throw many types (ClrDiagnosticsException, DllNotFoundException, ...): none is fatal here.
            warn($"The .NET runtime in {name} could not be read with {dac} ({ex.GetType().Name}: {ex.Message}); managed frames are not shown.");
            return null;
        }
    }

    /// <summary>
    /// ClrMD and the DAC in the worker process, never here: the DAC is native code that crashes on what it
    /// cannot make sense of (it took down the pwsh it ran in, reading another pwsh that ran on after the pause).
    /// </summary>
    private static IManagedFrameSource OpenClrMd(string name, int pid, IAddressSpace memory, ModuleMap map,
        IReadOnlyDictionary<int, X64Registers> registers, string dac, string? sysRoot, Action<string> warn, ILogger log) =>
        ClrMdWorkerClient.Open(name, pid, memory, ClrModule.From(map), registers, dac, sysRoot, warn, log);
}
