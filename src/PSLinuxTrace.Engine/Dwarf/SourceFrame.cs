namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// One source-level frame of a code address, as `addr2line -f -i` prints it: the function, and
/// the file, line and column in it. For an address inside inlined code,
/// <see cref="DwarfSourceInfo.Lookup"/> returns the inlined callee first (its name, the address's
/// own location; <see cref="IsInlined"/> true), then each caller (its name, the location of the
/// call inside it), ending with the real, out-of-line function (<see cref="IsInlined"/> false).
/// </summary>
/// <param name="Function">
/// The function's DW_AT_linkage_name, else its DW_AT_name, following DW_AT_abstract_origin and
/// DW_AT_specification (what addr2line -f prints; mangled for C++). Null when no DIE names it.
/// </param>
/// <param name="File">The full path as the line table gives it: comp_dir, directory and name joined as addr2line joins them. Null when unknown.</param>
/// <param name="Line">1-based line; 0 when unknown (DWARF's "no source line").</param>
/// <param name="Column">1-based column; 0 when the compiler gave none.</param>
/// <param name="IsInlined">True for a frame of inlined code (a DW_TAG_inlined_subroutine).</param>
public sealed record SourceFrame(string? Function, string? File, int Line, int Column, bool IsInlined)
{
    /// <summary>The function's DW_AT_name alone (unmangled, unqualified), when it has one.</summary>
    public string? Name { get; init; }

    /// <summary>
    /// The function's entry address (DW_AT_entry_pc, else DW_AT_low_pc, else the start of its first
    /// range), in the same file-address space as the lookup: "function+offset" is the looked-up
    /// address minus this. Null when no function DIE holds the address.
    /// </summary>
    public ulong? EntryAddress { get; init; }

    /// <summary>"function at file:line:column", as gdb and eu-addr2line print a location.</summary>
    public override string ToString() =>
        $"{Function ?? "??"}{(IsInlined ? " (inlined)" : "")} at {File ?? "??"}:{Line}{(Column > 0 ? $":{Column}" : "")}";
}
