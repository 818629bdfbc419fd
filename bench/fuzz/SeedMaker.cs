using System.Buffers.Binary;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Fuzz;

/// <summary>
/// Seed corpora from real files (make-seeds.sh builds them): small ELF files as they are, cores cut
/// down to their notes and a few bytes of each segment (the vDSO's whole), the CFI and DWARF
/// sections of small debug builds (CFI cut at an entry boundary), the BTF of small BPF objects.
/// </summary>
internal static class SeedMaker
{
    // A two-thread gcore keeps two XSAVE areas and gdb's extra notes: cores get twice the room.
    private const int MaxSeedBytes = 16 << 10, MaxCoreSeedBytes = 32 << 10, CfiBytes = 4 << 10, SegmentBytes = 64;

    public static void Make(string raw, string output)
    {
        foreach (var t in FuzzTargets.All) Directory.CreateDirectory(Path.Combine(output, t.Name));
        foreach (string f in Files(raw, "elf")) Keep(output, "elf", f, File.ReadAllBytes(f));
        foreach (string f in Files(raw, "core"))
        {
            byte[] core = File.ReadAllBytes(f);
            byte[] seed = TrimCore(core, keepVdso: true);
            Keep(output, "core", f, seed.Length <= MaxCoreSeedBytes ? seed : TrimCore(core, keepVdso: false), MaxCoreSeedBytes);
        }
        foreach (string f in Files(raw, "bpf"))
        {
            Keep(output, "bpfobj", f, File.ReadAllBytes(f));
            using var elf = ElfFile.Open(f);
            if (elf.FindSection(".BTF") is { } btf) Keep(output, "btf", f, elf.GetSectionBytes(btf).ToArray());
        }
        foreach (string f in Files(raw, "btf")) Keep(output, "btf", f, File.ReadAllBytes(f));
        foreach (string f in Files(raw, "debug")) FromDebugBuild(output, f);
    }

    private static IEnumerable<string> Files(string raw, string kind) =>
        Directory.Exists(Path.Combine(raw, kind)) ? Directory.EnumerateFiles(Path.Combine(raw, kind)).Order(StringComparer.Ordinal) : [];

    private static void Keep(string output, string target, string source, byte[] bytes, int maxBytes = MaxSeedBytes)
    {
        if (bytes.Length == 0 || bytes.Length > maxBytes)
        {
            Console.Error.WriteLine($"{target}: {Path.GetFileName(source)} skipped ({bytes.Length} bytes)");
            return;
        }
        File.WriteAllBytes(Path.Combine(output, target, "seed-" + Path.GetFileNameWithoutExtension(source)), bytes);
    }

    private static void FromDebugBuild(string output, string path)
    {
        using var elf = ElfFile.Open(path);
        byte[] Section(string name) => elf.FindSection(name) is { Type: not ElfSection.SHT_NOBITS } s ? elf.GetSectionBytes(s).ToArray() : [];
        var all = Enum.GetValues<DwarfSectionKind>().Select(k => (k, Section(DwarfSections.SectionName(k)))).Where(p => p.Item2.Length > 0).ToList();
        Keep(output, "dwarf-info", path, SectionBundle.Encode(all));
        Keep(output, "dwarf-line", path, SectionBundle.Encode(all.Where(p => p.k is DwarfSectionKind.Line or DwarfSectionKind.LineStr or DwarfSectionKind.Str)));
        if (Section(".eh_frame") is { Length: > 0 } eh) Keep(output, "cfi", path + ".eh", [0, .. CutAtEntry(eh, false)]);
        if (Section(".debug_frame") is { Length: > 0 } debug) Keep(output, "cfi", path + ".debug", [1, .. CutAtEntry(debug, true)]);
    }

    /// <summary>The first entries (CIEs and FDEs) of a CFI section that fit in <see cref="CfiBytes"/>.</summary>
    private static byte[] CutAtEntry(byte[] cfi, bool isDebugFrame)
    {
        int pos = 0;
        while (pos + 4 <= cfi.Length)
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(cfi.AsSpan(pos));
            if (length == 0xffffffff || pos + 4 + (long)length > Math.Min(cfi.Length, CfiBytes)) break;
            pos += 4 + (int)length;
            if (length == 0 && !isDebugFrame) break;
        }
        return cfi[..pos];
    }

    /// <summary>The core with its notes whole, the vDSO's segment whole (if asked) and <see cref="SegmentBytes"/> of every other segment; no section headers.</summary>
    private static byte[] TrimCore(byte[] core, bool keepVdso)
    {
        ulong vdso;
        using (var parsed = CoreFile.FromBytes((byte[])core.Clone(), "seed"))
            vdso = parsed.Auxv.FirstOrDefault(a => a.Type == 33).Value;
        using var elf = ElfFile.FromBytes(core, "seed");
        var phdrs = elf.ProgramHeaders;
        int tableEnd = 64 + phdrs.Count * 56;
        var data = new List<byte>();
        var table = new byte[phdrs.Count * 56];
        foreach (var p in phdrs)
        {
            ulong keep = p.Type != ElfProgramHeader.PT_LOAD || (keepVdso && p.VirtualAddress == vdso) ? p.FileSize : Math.Min(p.FileSize, SegmentBytes);
            var row = table.AsSpan(p.Index * 56, 56);
            WriteProgramHeader(row, core.AsSpan((int)elf.Header.ProgramHeaderOffset + p.Index * elf.Header.ProgramHeaderEntrySize, 56),
                (ulong)(tableEnd + data.Count), keep);
            data.AddRange(elf.GetBytes(p.Offset, keep).ToArray());
        }
        var header = core[..64];
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(32), 64);  // e_phoff
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(40), 0);   // e_shoff
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(60), 0);   // e_shnum
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(62), 0);   // e_shstrndx
        return [.. header, .. table, .. data];
    }

    private static void WriteProgramHeader(Span<byte> row, ReadOnlySpan<byte> original, ulong offset, ulong fileSize)
    {
        original.CopyTo(row);
        BinaryPrimitives.WriteUInt64LittleEndian(row[8..], offset);     // p_offset
        BinaryPrimitives.WriteUInt64LittleEndian(row[32..], fileSize);  // p_filesz
    }
}
