namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// A call as DWARF records it (DW_TAG_call_site, or DW_TAG_GNU_call_site in DWARF 4): its return
/// address (for a tail call, the address after the jump), whether it is a tail call, and what it
/// calls: the callee's name (linkage name first, as .symtab spells it) and, when the callee is
/// defined in the same unit, its entry address. Both null for an indirect call.
/// </summary>
public sealed record DwarfCallSite(ulong ReturnAddress, bool IsTailCall, string? Target, ulong? TargetEntry);

public sealed partial class DwarfSourceInfo
{
    /// <summary>
    /// The call whose return address is <paramref name="returnAddress"/> (a file address), from the unit
    /// that holds the call (the byte before it); null when DWARF records none there.
    /// gdb's tail-call frames start from this: the caller's call site names what it called.
    /// </summary>
    public DwarfCallSite? CallSiteReturningTo(ulong returnAddress)
    {
        if (returnAddress == 0) return null;
        lock (_gate)
        {
            foreach (ulong unitOffset in UnitsAt(returnAddress - 1))
            {
                var state = State(unitOffset);
                if (state.Unit is null || Scopes(state) is not { } scopes) continue;
                if (scopes.CallSiteReturningTo(returnAddress) is { } site) return Describe(state, scopes, site);
            }
            return null;
        }
    }

    /// <summary>
    /// The tail calls made by the function whose entry is <paramref name="functionEntry"/> (a file
    /// address), inlined code in it included; empty when no function DIE starts there.
    /// </summary>
    public IReadOnlyList<DwarfCallSite> TailCallsFrom(ulong functionEntry)
    {
        lock (_gate)
        {
            foreach (ulong unitOffset in UnitsAt(functionEntry))
            {
                var state = State(unitOffset);
                if (state.Unit is null || Scopes(state) is not { } scopes) continue;
                int inner = scopes.Innermost(functionEntry);
                if (inner < 0) continue;
                int function = scopes.RealFunction(inner);
                if (scopes[function].Entry != functionEntry) return [];
                return scopes.TailCallsIn(function).Select(site => Describe(state, scopes, site)).ToList();
            }
            return [];
        }
    }

    private DwarfCallSite Describe(UnitState state, DwarfScopeTree scopes, DwarfScopeTree.CallSite site)
    {
        if (site.Origin == 0) return new DwarfCallSite(site.ReturnAddress, site.IsTailCall, null, null);
        return new DwarfCallSite(site.ReturnAddress, site.IsTailCall, NamesOf(state.Unit!, site.Origin).Function, scopes.EntryOf(site.Origin));
    }
}
