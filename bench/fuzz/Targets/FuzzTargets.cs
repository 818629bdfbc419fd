namespace PSLinuxTrace.Fuzz;

/// <summary>
/// One parser of untrusted bytes, driven the way the engine drives it. <see cref="Run"/> returns
/// normally or throws what the parser throws: the harness (bench/fuzz) and the replay test
/// (tests/.../Fuzz) both count only <see cref="Engine.BadInputFormatException"/> as an answer.
/// </summary>
/// <param name="Name">the corpus folder under tests/Fixtures/fuzz and the harness' argument</param>
public sealed record FuzzTarget(string Name, string Parser, Action<byte[]> Run);

/// <summary>Every target, by name.</summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyList<FuzzTarget> All =
    [
        new("elf", "ElfFile: headers, sections, symbols and hash tables, notes, dynamic, relocations", ElfTarget.Run),
        new("core", "CoreFile: notes (PRSTATUS, PRPSINFO, SIGINFO, AUXV, NT_FILE, FPREGSET, XSTATE), segments, vDSO image", CoreTarget.Run),
        new("cfi", "CallFrameInfo (.eh_frame/.debug_frame) rows, DwarfExpression through the Unwinder", CfiTarget.Run),
        new("btf", "Btf: type records, struct and member lookups", BtfTarget.Run),
        new("bpfobj", "BpfObject.Parse: the BPF ELF object, maps, programs, relocations (parse only)", BpfObjectTarget.Run),
        new("dwarf-line", "DwarfLineTable through DwarfSourceInfo: .debug_line (v2-5) under a fixed unit", DwarfTargets.RunLine),
        new("dwarf-info", "DwarfSourceInfo: .debug_info/.debug_abbrev units, scopes, aranges, ranges, strings, lines", DwarfTargets.RunInfo),
    ];

    public static FuzzTarget Find(string name) =>
        All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"no fuzz target '{name}' (known: {string.Join(", ", All.Select(t => t.Name))})");
}
