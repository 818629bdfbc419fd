using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// The frames a tail call took off the stack, found as gdb finds them (gdb/dwarf2/loc.c,
/// call_site_find_chain): the caller's call site at its return address names the function it called;
/// when that is not the callee the unwinder found, the functions in between must have tail-called their
/// way to it, and DWARF's tail-call sites (DW_AT_call_tail_call) give the path. Where several paths
/// lead there, only what they all share is kept: their common first and last steps, as gdb keeps them.
/// Each step is a function at the return address of its tail call (the address after its jump).
/// </summary>
internal sealed class TailCallFinder(ModuleMap map, ElfFileCache files, ILogger log)
{
    // Bounds on the search (gdb has none): the steps of one path, the paths kept, the functions looked at.
    private const int MaxDepth = 8, MaxPaths = 64, MaxVisits = 256;
    private readonly Dictionary<(MappedModule, string), ulong?> _resolved = new();
    private int _visits;

    /// <summary>A function a tail call removed: it was in <see cref="Module"/>, at <see cref="ReturnAddress"/> (a memory address).</summary>
    public readonly record struct Step(MappedModule Module, ulong ReturnAddress);

    /// <summary>
    /// The tail-call steps between a callee (its function's entry, a memory address, and the names it goes
    /// by) and the caller frame above it (its return address <paramref name="callerPc"/>), innermost first.
    /// </summary>
    public List<Step> Between(ulong calleeEntry, IReadOnlyCollection<string> calleeNames, ulong callerPc)
    {
        var none = new List<Step>();
        if (callerPc == 0 || map.Find(callerPc - 1) is not { LoadBiasKnown: true } caller || caller.SourceInfo(files) is not { } dwarf) return none;
        try
        {
            if (dwarf.CallSiteReturningTo(callerPc - caller.LoadBias) is not { IsTailCall: false } site) return none;
            // The common case: the call went straight to the callee.
            if (site.TargetEntry is null && site.Target is { } name && calleeNames.Contains(name)) return none;
            if (Resolve(caller, site) is not { } target || target == calleeEntry) return none;
            var paths = new List<List<Step>>();
            _visits = 0;
            Walk(target, calleeEntry, new List<Step>(), new HashSet<ulong> { target }, paths);
            return Shared(paths);
        }
        catch (BadInputFormatException ex)
        {
            log.LogDebug("{Path}: damaged call sites: {Message}", caller.Path, ex.Message);
            return none;
        }
    }

    /// <summary>Depth-first from <paramref name="function"/> along its tail calls, recording every path that reaches the callee.</summary>
    private void Walk(ulong function, ulong calleeEntry, List<Step> path, HashSet<ulong> visiting, List<List<Step>> paths)
    {
        if (path.Count >= MaxDepth || paths.Count >= MaxPaths || ++_visits > MaxVisits) return;
        if (map.Find(function) is not { LoadBiasKnown: true } module || module.SourceInfo(files) is not { } dwarf) return;
        foreach (var site in dwarf.TailCallsFrom(function - module.LoadBias))
        {
            if (Resolve(module, site) is not { } next) continue;
            path.Add(new Step(module, site.ReturnAddress + module.LoadBias));
            if (next == calleeEntry) paths.Add(new List<Step>(path));
            else if (visiting.Add(next))
            {
                Walk(next, calleeEntry, path, visiting, paths);
                visiting.Remove(next);
            }
            path.RemoveAt(path.Count - 1);
        }
    }

    /// <summary>
    /// gdb's intersection of ambiguous paths (chain_candidate): the longest common prefix (from the caller's
    /// side) and suffix (from the callee's); returned innermost (callee side) first.
    /// </summary>
    private static List<Step> Shared(List<List<Step>> paths)
    {
        if (paths.Count == 0) return new List<Step>();
        var first = paths[0];
        int prefix = first.Count, suffix = first.Count;
        foreach (var p in paths.Skip(1))
        {
            int n = Math.Min(first.Count, p.Count), i = 0, j = 0;
            while (i < Math.Min(prefix, n) && first[i] == p[i]) i++;
            while (j < Math.Min(suffix, n) && first[^(j + 1)] == p[^(j + 1)]) j++;
            (prefix, suffix) = (i, j);
        }
        var kept = first.Take(prefix).ToList();
        if (prefix < first.Count) kept.AddRange(first.Skip(Math.Max(prefix, first.Count - suffix)));
        kept.Reverse();
        return kept;
    }

    /// <summary>
    /// Where a call site's callee starts (a memory address): its DWARF entry when the unit defines it, else
    /// its name in the calling module's symbols, else in the dynamic symbols of every module (a call through
    /// the PLT into a library). Null for an indirect call or a name nothing defines.
    /// </summary>
    private ulong? Resolve(MappedModule caller, DwarfCallSite site)
    {
        if (site.TargetEntry is { } entry) return entry + caller.LoadBias;
        if (site.Target is not { } name) return null;
        if (_resolved.TryGetValue((caller, name), out var cached)) return cached;
        ulong? found = Defined(caller, caller.Symbols, name);
        foreach (var module in map.Modules)
        {
            if (found is not null) break;
            found = Defined(module, module.DynamicSymbols, name);
        }
        return _resolved[(caller, name)] = found;
    }

    private static ulong? Defined(MappedModule module, ElfSymbolTable? table, string name) =>
        module.LoadBiasKnown && table?.Lookup(name) is { Kind: ElfSymbolKind.Function, Value: > 0 } symbol ? symbol.Value + module.LoadBias : null;
}
