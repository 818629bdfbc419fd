using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// Turns one unwound frame and its DWARF source frames (innermost first, as
/// <see cref="DwarfSourceInfo.Lookup"/> gives them) into the <see cref="StackFrame"/>s gdb's bt shows
/// for it: one frame per inlined call, then the real function's frame, all at the same pc.
/// </summary>
/// <remarks>
/// The rules, matching gdb's bt (frame numbers, names, lines) and eu-stack -i -s:
/// <list type="bullet">
/// <item>Index counts every frame, inlined ones included, as gdb numbers them.</item>
/// <item>An inlined frame: Symbol is the inlined function's DWARF name (its linkage name when it has
/// one, so C++ stays mangled as in .symtab), Offset 0 (inlined code has no symbol to count from),
/// IsInlined true; the innermost one has the pc's file:line:column, each outer one the location of
/// the call it made. InstructionPointer, StackPointer, ModulePath and Method are the real frame's.</item>
/// <item>The real frame: Symbol is the function's DWARF name, as gdb and eu-stack name it, where the
/// .symtab/.dynsym symbol that holds the pc starts at the function's entry (an alias: __GI_raise for raise,
/// __libc_pause for pause) or no symbol holds it; Offset is from that start. A symbol that starts elsewhere
/// in the function (gcc's cold part, main.cold) keeps its own name and offset, so Symbol+Offset always
/// points at the instruction (gdb would say main). Its file:line is the pc's, or with inlined calls the
/// outermost call's.</item>
/// <item>Line 0 (compiler-made code DWARF gives no line) leaves File and Line null, as gdb shows no location.</item>
/// </list>
/// </remarks>
internal static class SourceFrameMapper
{
    /// <summary>Adds the frames of <paramref name="real"/> (its ELF name already set) to <paramref name="into"/>.</summary>
    /// <param name="entryBias">added to a DWARF entry address to get a memory address (the module's load bias)</param>
    public static void Add(List<StackFrame> into, StackFrame real, IReadOnlyList<SourceFrame> source, ulong entryBias)
    {
        if (source.Count == 0)
        {
            into.Add(real with { Index = into.Count });
            return;
        }
        for (int i = 0; i < source.Count - 1; i++)
        {
            var s = source[i];
            into.Add(WithLocation(real with { Index = into.Count, Symbol = s.Function ?? s.Name, Offset = 0, IsInlined = true }, s));
        }
        var outer = source[^1];
        var frame = real with { Index = into.Count };
        if (outer.Function is { } function && outer.EntryAddress is { } entry)
        {
            ulong entryPc = entry + entryBias;
            // gdb's name where it names the same code: the symbol that holds the pc starts at the function's
            // entry (an alias: raise and __GI_raise), or no symbol holds it. A symbol that starts elsewhere
            // (main.cold) keeps its own name, so that Symbol+Offset always points at the instruction.
            if (real.Symbol is null && real.InstructionPointer >= entryPc)
                frame = frame with { Symbol = function, Offset = real.InstructionPointer - entryPc };
            else if (real.Symbol is not null && real.InstructionPointer - real.Offset == entryPc)
                frame = frame with { Symbol = function };
        }
        into.Add(WithLocation(frame, outer));
    }

    private static StackFrame WithLocation(StackFrame frame, SourceFrame s) =>
        s.Line <= 0 || s.File is null ? frame : frame with { File = s.File, Line = s.Line, Column = s.Column > 0 ? s.Column : null };
}
