using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// The load bias of a mapped ELF file: what was added to its virtual addresses. For the first
/// mapping whose file offset lies in a PT_LOAD segment: bias = start - offset + p_offset - p_vaddr.
/// </summary>
public static class LoadBiasFinder
{
    public static ulong? Compute(ElfFile elf, IEnumerable<(ulong Start, ulong FileOffset)> mappings)
    {
        foreach (var (start, offset) in mappings.OrderBy(m => m.Start))
        {
            foreach (var p in elf.ProgramHeaders)
            {
                if (p.Type != ElfProgramHeader.PT_LOAD || p.FileSize == 0) continue;
                ulong pageOffset = p.Offset & ~0xfffUL;
                if (offset < pageOffset || offset >= p.Offset + p.FileSize) continue;
                return unchecked(start - offset + p.Offset - p.VirtualAddress);
            }
        }
        return null;
    }
}
