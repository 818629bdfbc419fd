using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Unwind;

namespace PSLinuxTrace.Fuzz;

/// <summary>
/// The core reader as Read-CoreDump uses it before it looks at any file on disk: the notes, each
/// thread's registers (PRSTATUS, FPREGSET, XSTATE), the module layout (NT_FILE, auxv), the segments'
/// memory, and the vDSO image the core holds (its ELF header, dynamic symbols and .eh_frame from memory).
/// </summary>
internal static class CoreTarget
{
    private const ulong AtSysinfoEhdr = 33;

    public static void Run(byte[] input)
    {
        using var core = CoreFile.FromBytes(input, "fuzz.core");
        foreach (var thread in core.Threads) CoreDumpBuilder.Registers(thread);
        _ = CoreDumpBuilder.SignalName(core);
        _ = CoreModules.Layout(core).Mappings.Count;
        Span<byte> probe = stackalloc byte[64];
        foreach (var segment in core.Memory.Segments.Take(64))
        {
            core.Memory.Read(segment.Start, probe);
            core.Memory.Read(segment.End - 1, probe);
        }
        foreach (var (type, value) in core.Auxv)
        {
            _ = CoreNotes.AuxvName(type);
            if (type == AtSysinfoEhdr) Vdso(core, value);
        }
    }

    private static void Vdso(CoreFile core, ulong address)
    {
        var image = ElfImage.FromAddressSpace(core.Memory, address, "[vdso]");
        _ = image.BuildIdHex;
        if (image.DynamicSymbols is { } symbols)
            foreach (var s in symbols.All.Take(256)) _ = s.Name;
        if (CallFrameInfo.FromImage(image) is { } cfi)
            foreach (ulong pc in cfi.FdeStarts().Take(64)) cfi.FindRow(pc);
    }
}
