using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Unwind;

public sealed partial class CallFrameInfo
{
    private const ulong MaxEhFrameBytes = 64 << 20;

    /// <summary>
    /// The .eh_frame of an image in memory, found as a runtime unwinder finds it: PT_GNU_EH_FRAME maps
    /// .eh_frame_hdr, whose eh_frame_ptr gives .eh_frame's start (LSB Core, "The .eh_frame_hdr section").
    /// Its end is the end of the last FDE the header's search table lists (the vDSO's .eh_frame has no
    /// zero terminator: it is not linked with crtend.o), else the end of the segment that holds it.
    /// Null when the image has no PT_GNU_EH_FRAME or its memory is not readable.
    /// </summary>
    public static CallFrameInfo? FromImage(ElfImage image)
    {
        var hdrSegment = image.ProgramHeaders.FirstOrDefault(p => p.Type == ElfProgramHeader.PT_GNU_EH_FRAME);
        if (hdrSegment is null || hdrSegment.MemorySize < 8) return null;
        ulong hdrAt = hdrSegment.VirtualAddress;
        var hdr = image.ReadAt(hdrAt, Math.Min(hdrSegment.MemorySize, 1UL << 20));
        if (hdr is null) return null;
        var c = new DwarfCursor(hdr, hdrAt);
        if (c.U8() != 1) throw new BadInputFormatException($"{image.Name}: .eh_frame_hdr version {hdr[0]} is not 1.");
        byte ehFramePtrEnc = c.U8(), countEnc = c.U8(), tableEnc = c.U8();
        ulong ehFrame = c.Encoded(ehFramePtrEnc, hdrAt);
        ulong end = EndOfLastFde(image, ref c, countEnc, tableEnc, hdrAt) ?? EndOfSegment(image, ehFrame);
        if (end <= ehFrame || end - ehFrame > MaxEhFrameBytes)
            throw new BadInputFormatException($"{image.Name}: .eh_frame at 0x{ehFrame:x} would end at 0x{end:x}.");
        return image.ReadAt(ehFrame, end - ehFrame) is { } data ? new CallFrameInfo(image.Name + " (memory)", data, ehFrame) : null;
    }

    /// <summary>From the binary search table (DW_EH_PE_datarel | sdata4 pairs of initial location and FDE address): where the highest FDE ends.</summary>
    private static ulong? EndOfLastFde(ElfImage image, ref DwarfCursor c, byte countEnc, byte tableEnc, ulong hdrAt)
    {
        const byte DataRelSdata4 = DwarfCursor.PeDataRel | DwarfCursor.PeSdata4;
        if (countEnc == DwarfCursor.PeOmit || tableEnc != DataRelSdata4) return null;
        ulong count = c.Encoded(countEnc, hdrAt);
        if (count == 0 || count > (ulong)(c.Length - c.Position) / 8) return null;
        ulong last = 0;
        for (ulong i = 0; i < count; i++)
        {
            c.Encoded(tableEnc, hdrAt);
            last = Math.Max(last, c.Encoded(tableEnc, hdrAt));
        }
        // The FDE's length word: 32 bits, or 0xffffffff and then 64 (DWARF's 64-bit format).
        if (image.ReadAt(last, 4) is not { } word) return null;
        uint length = ElfFile.U32(word, 0);
        if (length != 0xffffffff) return last + 4 + length;
        return image.ReadAt(last + 4, 8) is { } wide ? last + 12 + ElfFile.U64(wide, 0) : null;
    }

    private static ulong EndOfSegment(ElfImage image, ulong address) =>
        image.ProgramHeaders.FirstOrDefault(p => p.Type == ElfProgramHeader.PT_LOAD && p.ContainsAddress(address)) is { } p
            ? p.VirtualAddress + p.FileSize
            : throw new BadInputFormatException($"{image.Name}: .eh_frame at 0x{address:x} is in no loaded segment.");
}
