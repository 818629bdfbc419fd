using System.Buffers.Binary;
using System.Reflection;
using System.Text;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Bpf;

/// <summary>A map definition from the object's legacy "maps" section (struct bpf_map_def).</summary>
public sealed record BpfMapSpec(string Name, uint Type, uint KeySize, uint ValueSize, uint MaxEntries, uint Flags);

/// <summary>A load-time fix-up: the ld_imm64 at <paramref name="InstructionIndex"/> must get the fd of <paramref name="MapName"/>.</summary>
public readonly record struct BpfMapRelocation(int InstructionIndex, string MapName);

/// <summary>One program: its ELF section ("tracepoint/syscalls/sys_enter_execve"), function name and instructions.</summary>
public sealed record BpfProgramSpec(string Name, string Section, byte[] Instructions, IReadOnlyList<BpfMapRelocation> MapRelocations)
{
    /// <summary>Where each function of the program starts: the program itself at 0, then the .text functions appended after it.</summary>
    public IReadOnlyList<(int Instruction, string Name)> Functions { get; init; } = [];

    /// <summary>"syscalls/sys_enter_execve" for a section "tracepoint/syscalls/sys_enter_execve".</summary>
    public string? Tracepoint => Section.StartsWith("tracepoint/", StringComparison.Ordinal) ? Section["tracepoint/".Length..] : null;

    /// <summary>"sys_enter" for a section "raw_tracepoint/sys_enter" (libbpf's name for the section; "raw_tp/" too).</summary>
    public string? RawTracepoint =>
        Section.StartsWith("raw_tracepoint/", StringComparison.Ordinal) ? Section["raw_tracepoint/".Length..]
        : Section.StartsWith("raw_tp/", StringComparison.Ordinal) ? Section["raw_tp/".Length..] : null;
}

/// <summary>
/// A BPF ELF object as clang -target bpf writes it (relocatable ELF, machine EM_BPF): programs in
/// executable sections named after their attach point, maps in "maps", the license string, and
/// R_BPF_64_64 relocations that point ld_imm64 instructions at map symbols. Parsing only; nothing
/// here talks to the kernel.
/// </summary>
public sealed class BpfObject
{
    private const ushort EM_BPF = 247;
    private const uint R_BPF_64_64 = 1;
    private const int MapDefSize = 20;   // struct bpf_map_def { type, key_size, value_size, max_entries, map_flags }

    public IReadOnlyList<BpfMapSpec> Maps { get; }
    public IReadOnlyList<BpfProgramSpec> Programs { get; }
    public string License { get; }

    private BpfObject(IReadOnlyList<BpfMapSpec> maps, IReadOnlyList<BpfProgramSpec> programs, string license)
    {
        Maps = maps; Programs = programs; License = license;
    }

    /// <summary>The object compiled from src/bpf/<paramref name="resourceName"/>'s source, embedded in the engine.</summary>
    public static byte[] ReadEmbedded(string resourceName)
    {
        using Stream? s = typeof(BpfObject).Assembly.GetManifestResourceStream(resourceName)
            ?? throw new BadInputFormatException($"The engine assembly has no embedded BPF object '{resourceName}'.");
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Parses a BPF object; BadInputFormatException for anything malformed.</summary>
    public static BpfObject Parse(byte[] elfBytes, string name)
    {
        using ElfFile elf = ElfFile.FromBytes(elfBytes, name);
        if (elf.Header.Type != ElfType.Relocatable || elf.Header.Machine != EM_BPF)
            throw new BadInputFormatException($"{name} is not a relocatable BPF object (type {elf.Header.Type}, machine {elf.Header.Machine}).");
        ElfSymbolTable symbols = elf.SymbolTable ?? throw new BadInputFormatException($"{name} has no symbol table.");

        ElfSection? mapsSection = elf.FindSection("maps");
        var maps = new List<BpfMapSpec>();
        if (mapsSection is not null)
        {
            ReadOnlySpan<byte> bytes = elf.GetSectionBytes(mapsSection);
            foreach (ElfSymbol sym in symbols.All)
            {
                if (sym.SectionIndex != mapsSection.Index || sym.Kind != ElfSymbolKind.Object) continue;
                // Not sym.Value + MapDefSize: a value near 2^64 wrapped past this check (found by fuzzing).
                if (sym.Value > (ulong)bytes.Length || (ulong)bytes.Length - sym.Value < MapDefSize)
                    throw new BadInputFormatException($"{name}: map '{sym.Name}' lies outside the maps section.");
                var d = bytes.Slice((int)sym.Value, MapDefSize);
                maps.Add(new BpfMapSpec(sym.Name, U32(d, 0), U32(d, 4), U32(d, 8), U32(d, 12), U32(d, 16)));
            }
        }

        string license = "";
        if (elf.FindSection("license") is { } lic)
        {
            var b = elf.GetSectionBytes(lic);
            int nul = b.IndexOf((byte)0);
            license = Encoding.ASCII.GetString(nul < 0 ? b : b[..nul]);
        }

        // .text holds the static functions that are not inlined: bpf_loop callbacks and BPF-to-BPF
        // calls. A program that refers to them gets a copy of .text appended (as libbpf does).
        ElfSection? text = elf.Sections.FirstOrDefault(s => s.Name == ".text" && s.Type == ElfSection.SHT_PROGBITS && s.Size > 0);
        var programs = new List<BpfProgramSpec>();
        foreach (ElfSection section in elf.Sections)
        {
            const ulong SHF_EXECINSTR = 4;
            if (section.Type != ElfSection.SHT_PROGBITS || (section.Flags & SHF_EXECINSTR) == 0 || section.Size == 0 || section == text) continue;
            var linker = new ProgramLinker(elf, symbols, name, mapsSection, text);
            byte[] insns = linker.Link(section);
            ElfSymbol? func = symbols.All.FirstOrDefault(s => s.SectionIndex == section.Index && s.Kind == ElfSymbolKind.Function && s.Value == 0);
            string progName = func?.Name ?? section.Name;
            programs.Add(new BpfProgramSpec(progName, section.Name, insns, linker.MapRelocations)
            {
                Functions = [(0, progName), .. linker.TextFunctions],
            });
        }
        return new BpfObject(maps, programs, license);
    }

    private static uint U32(ReadOnlySpan<byte> b, int off) => BinaryPrimitives.ReadUInt32LittleEndian(b[off..]);

    /// <summary>
    /// One program's instructions with its relocations resolved: map references are listed for the
    /// loader (which knows the map fds), references into .text (a callback's address in an ld_imm64,
    /// a call) point at a copy of .text appended after the program, with .text's own map references.
    /// </summary>
    private sealed class ProgramLinker(ElfFile elf, ElfSymbolTable symbols, string name, ElfSection? mapsSection, ElfSection? text)
    {
        private const uint R_BPF_64_32 = 10;
        private const byte BPF_CALL = 0x85, BPF_PSEUDO_CALL = 1, BPF_PSEUDO_FUNC = 4;
        private readonly List<BpfMapRelocation> _maps = [];
        private readonly List<(int, string)> _functions = [];

        public IReadOnlyList<BpfMapRelocation> MapRelocations => _maps;

        /// <summary>The .text functions appended to the program, where they start.</summary>
        public IReadOnlyList<(int Instruction, string Name)> TextFunctions => _functions;

        public byte[] Link(ElfSection section)
        {
            if (section.Size % 8 != 0) throw new BadInputFormatException($"{name}: section {section.Name} is not a whole number of instructions.");
            byte[] own = elf.GetSectionBytes(section).ToArray();
            var textRefs = Relocate(section, own, 0, out bool usesText);
            if (!usesText) return own;
            if (text is null || text.Size % 8 != 0) throw new BadInputFormatException($"{name}: {section.Name} calls into a missing or malformed .text section.");
            int textBase = own.Length / 8;
            // .text's bytes are bounds-checked before the buffer is sized: a size past the file must
            // not become a huge (or truncated int) allocation first (found by fuzzing).
            ReadOnlySpan<byte> textBytes = elf.GetSectionBytes(text);
            byte[] all = new byte[own.Length + textBytes.Length];
            own.CopyTo(all, 0);
            textBytes.CopyTo(all.AsSpan(own.Length));
            textRefs.AddRange(Relocate(text, all, textBase, out _));
            foreach (ElfSymbol f in symbols.All.Where(f => f.SectionIndex == text.Index && f.Kind == ElfSymbolKind.Function).OrderBy(f => f.Value))
                _functions.Add((textBase + (int)(f.Value / 8), f.Name));
            foreach (var (at, targetByte) in textRefs)
            {
                if (targetByte % 8 != 0 || targetByte / 8 >= (long)text.Size / 8) throw new BadInputFormatException($"{name}: a reference into .text at instruction {at} points outside it.");
                int target = textBase + (int)(targetByte / 8);
                int o = at * 8;
                byte src = all[o] == BPF_CALL ? BPF_PSEUDO_CALL : BPF_PSEUDO_FUNC;
                all[o + 1] = (byte)((all[o + 1] & 0x0f) | (src << 4));
                BinaryPrimitives.WriteInt32LittleEndian(all.AsSpan(o + 4), target - (at + 1));   // relative to the next instruction
            }
            return all;
        }

        /// <summary>Reads the relocations of <paramref name="section"/>, whose code starts at instruction <paramref name="baseInsn"/> of <paramref name="insns"/>.</summary>
        private List<(int At, long TargetByte)> Relocate(ElfSection section, byte[] insns, int baseInsn, out bool usesText)
        {
            usesText = false;
            var textRefs = new List<(int, long)>();
            ElfSection? rel = elf.Sections.FirstOrDefault(s => s.Type == ElfSection.SHT_REL && s.Info == (uint)section.Index);
            if (rel is null) return textRefs;
            foreach (ElfRelocation r in elf.GetRelocations(rel))
            {
                if (r.SymbolIndex >= symbols.Count) throw new BadInputFormatException($"{name}: relocation symbol {r.SymbolIndex} out of range.");
                ElfSymbol target = symbols[(int)r.SymbolIndex];
                // Within the section's own instructions: an offset near 2^64 wrapped past a check on
                // baseInsn * 8 + offset, to a negative index or into another section's code (the sibling of a fuzzing find).
                if (r.Offset % 8 != 0 || section.Size < 8 || r.Offset > section.Size - 8)
                    throw new BadInputFormatException($"{name}: relocation at {r.Offset} in {section.Name} is not on an instruction.");
                ulong at = (ulong)baseInsn * 8 + r.Offset;
                if (at + 8 > (ulong)insns.Length)
                    throw new BadInputFormatException($"{name}: relocation at {r.Offset} in {section.Name} is not on an instruction.");
                int idx = (int)(at / 8);
                int imm = BinaryPrimitives.ReadInt32LittleEndian(insns.AsSpan((int)at + 4));
                if (r.Type == R_BPF_64_64 && mapsSection is not null && target.SectionIndex == mapsSection.Index)
                {
                    if (at + 16 > (ulong)insns.Length || insns[at] != Interop.Bpf.BPF_LD_IMM64)
                        throw new BadInputFormatException($"{name}: map relocation at {r.Offset} in {section.Name} is not on an ld_imm64 instruction.");
                    _maps.Add(new BpfMapRelocation(idx, target.Name));
                }
                else if (text is not null && target.SectionIndex == text.Index && r.Type == R_BPF_64_64 && insns[at] == Interop.Bpf.BPF_LD_IMM64)
                {
                    // A function's address (a bpf_loop callback): the symbol (.text or the function) plus the addend in imm.
                    textRefs.Add((idx, (long)target.Value + imm));
                    usesText = true;
                }
                else if (text is not null && target.SectionIndex == text.Index && r.Type == R_BPF_64_32 && insns[at] == BPF_CALL)
                {
                    // call imm: clang leaves imm = (offset in .text of the callee) / 8 - 1 against the section symbol.
                    textRefs.Add((idx, (long)target.Value + ((long)imm + 1) * 8));
                    usesText = true;
                }
                else
                    throw new BadInputFormatException($"{name}: unsupported relocation (type {r.Type}) against '{target.Name}' in {section.Name}; only map references and .text functions are supported.");
            }
            return textRefs;
        }
    }
}
