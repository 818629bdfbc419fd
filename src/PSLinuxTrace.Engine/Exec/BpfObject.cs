using PSLinuxTrace.Engine.Model;
using System.Buffers.Binary;
using System.Reflection;
using System.Text;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Exec;

/// <summary>A map definition from the object's legacy "maps" section (struct bpf_map_def).</summary>
public sealed record BpfMapSpec(string Name, uint Type, uint KeySize, uint ValueSize, uint MaxEntries, uint Flags);

/// <summary>A load-time fix-up: the ld_imm64 at <paramref name="InstructionIndex"/> must get the fd of <paramref name="MapName"/>.</summary>
public readonly record struct BpfMapRelocation(int InstructionIndex, string MapName);

/// <summary>One program: its ELF section ("tracepoint/syscalls/sys_enter_execve"), function name and instructions.</summary>
public sealed record BpfProgramSpec(string Name, string Section, byte[] Instructions, IReadOnlyList<BpfMapRelocation> MapRelocations)
{
    /// <summary>"syscalls/sys_enter_execve" for a section "tracepoint/syscalls/sys_enter_execve".</summary>
    public string? Tracepoint => Section.StartsWith("tracepoint/", StringComparison.Ordinal) ? Section["tracepoint/".Length..] : null;
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
                if (sym.Value + MapDefSize > (ulong)bytes.Length)
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

        var programs = new List<BpfProgramSpec>();
        foreach (ElfSection section in elf.Sections)
        {
            const ulong SHF_EXECINSTR = 4;
            if (section.Type != ElfSection.SHT_PROGBITS || (section.Flags & SHF_EXECINSTR) == 0 || section.Size == 0) continue;
            if (section.Size % 8 != 0) throw new BadInputFormatException($"{name}: section {section.Name} is not a whole number of instructions.");
            byte[] insns = elf.GetSectionBytes(section).ToArray();
            ElfSymbol? func = symbols.All.FirstOrDefault(s => s.SectionIndex == section.Index && s.Kind == ElfSymbolKind.Function && s.Value == 0);
            var relocs = new List<BpfMapRelocation>();
            ElfSection? rel = elf.Sections.FirstOrDefault(s => s.Type == ElfSection.SHT_REL && s.Info == (uint)section.Index);
            if (rel is not null)
            {
                foreach (ElfRelocation r in elf.GetRelocations(rel))
                {
                    if (r.SymbolIndex >= symbols.Count) throw new BadInputFormatException($"{name}: relocation symbol {r.SymbolIndex} out of range.");
                    ElfSymbol target = symbols[(int)r.SymbolIndex];
                    if (r.Type != R_BPF_64_64 || mapsSection is null || target.SectionIndex != mapsSection.Index)
                        throw new BadInputFormatException($"{name}: unsupported relocation (type {r.Type}) against '{target.Name}' in {section.Name}; only map references are supported.");
                    if (r.Offset % 8 != 0 || r.Offset + 16 > (ulong)insns.Length || insns[r.Offset] != Interop.Bpf.BPF_LD_IMM64)
                        throw new BadInputFormatException($"{name}: map relocation at {r.Offset} in {section.Name} is not on an ld_imm64 instruction.");
                    relocs.Add(new BpfMapRelocation((int)(r.Offset / 8), target.Name));
                }
            }
            programs.Add(new BpfProgramSpec(func?.Name ?? section.Name, section.Name, insns, relocs));
        }
        return new BpfObject(maps, programs, license);
    }

    private static uint U32(ReadOnlySpan<byte> b, int off) => BinaryPrimitives.ReadUInt32LittleEndian(b[off..]);
}
