using System.Buffers.Binary;
using PSLinuxTrace.Engine.Unwind;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>The <see cref="CoreDump"/> output object of a read core: process and signal, mappings, auxv, build-ids, registers.</summary>
internal static class CoreDumpBuilder
{
    public static CoreDump Build(CoreFile core, string path, ModuleMap map, CoreThread[] threads, string? signature, string[] warnings)
    {
        var si = core.Threads[0].SigInfo;
        int signo = SignalNumber(core);
        string producer = core.OtherNotes.Any(n => n.Name == CoreDumpReader.SnapshotNoteName) ? "PSLinuxTrace" : core.Elf.Sections.Count > 0 ? "Gdb" : "Kernel";
        var psinfo = core.PsInfo;
        return new CoreDump
        {
            // A compressed core's temporary file is gone once the read ends: later reads decompress again.
            Memory = core.Memory.Detach(core.Compression == CoreCompression.None ? null
                : new CompressedCoreContents(System.IO.Path.GetFullPath(path), core.Compression)).Read,
            Path = System.IO.Path.GetFullPath(path),
            Pid = core.Threads[0].Status.Pid is var pid && psinfo is not null ? psinfo.Pid : pid,
            ParentId = psinfo?.PPid ?? core.Threads[0].Status.PPid,
            ProcessName = psinfo?.FileName ?? "",
            CommandLine = psinfo?.Arguments ?? "",
            UserId = psinfo?.Uid ?? 0,
            GroupId = psinfo?.Gid ?? 0,
            Signal = SignalName(core),
            SignalNumber = signo,
            SignalCode = si?.Code,
            SignalCodeName = si is null ? null : CoreNotes.SignalCodeName(si.SigNo, si.Code),
            FaultAddress = si is { SigNo: 4 or 5 or 7 or 8 or 11, Code: > 0 } ? si.Address : null,
            SenderPid = si is { Code: <= 0 } ? si.SenderPid : null,
            Executable = map.Executable is { } exe ? ModuleLayout.StripDeleted(exe.Path) : null,
            Threads = threads,
            Mappings = Mappings(core),
            Auxv = core.Auxv.Select(a => new AuxvEntry(a.Type, CoreNotes.AuxvName(a.Type), a.Value)).ToArray(),
            BuildIds = map.Modules.Where(m => !m.IsVdso)
                .Select(m => new ModuleBuildId(m.Path, m.BuildId, m.LocalPath, m.LocalBuildId, m.Matches, m.LoadBias)).ToArray(),
            IsTruncated = core.IsTruncated,
            Producer = producer,
            FileSize = core.FileSize,
            CoreSize = core.Elf.Length,
            Compression = core.Compression == CoreCompression.None ? null : CoreDecompressor.Name(core.Compression),
            Signature = signature,
            SignatureHash = CrashSignature.Hash(signature),
            Warnings = warnings,
        };
    }

    /// <summary>The signal that ended the process (NT_SIGINFO's, else the first thread's pr_cursig), 0 for none.</summary>
    private static int SignalNumber(CoreFile core) => core.Threads[0].SigInfo?.SigNo ?? core.Threads[0].Status.CurSig;

    public static string? SignalName(CoreFile core) => SignalNumber(core) is var signo and not 0 ? Signals.Name(signo) : null;

    /// <summary>Each PT_LOAD segment, with the file NT_FILE says is mapped there.</summary>
    private static CoreMapping[] Mappings(CoreFile core) => core.Segments.Select(s =>
    {
        var p = core.Elf.ProgramHeaders.First(ph => ph.Type == ElfProgramHeader.PT_LOAD && ph.VirtualAddress == s.Start);
        var file = core.Files.FirstOrDefault(f => s.Start >= f.Start && s.Start < f.End);
        ulong fileOffset = file is null ? 0 : file.FileOffset + (s.Start - file.Start);
        return new CoreMapping(s.Start, s.End, fileOffset, p.Permissions, file?.Path, s.BytesInFile > 0, s.BytesInFile);
    }).ToArray();

    /// <summary>A thread's registers: NT_PRSTATUS, plus the FP/SSE state (NT_FPREGSET) and the YMM upper halves (NT_X86_XSTATE) when present.</summary>
    public static X64Registers Registers(CoreFile.ThreadNotes t)
    {
        var r = t.Status.Registers.ToModel();
        if (t.FpRegs is not { Length: >= CoreNotes.FpRegsSize } fp) return r;
        var xmm = new string[16];
        for (int i = 0; i < 16; i++) xmm[i] = Hex128(fp.AsSpan(160 + i * 16, 16));
        string[]? ymm = null;
        // XSAVE layout: the YMM upper halves (component 2) sit at offset 576 when XSTATE_BV bit 2 is set.
        if (t.XState is { Length: >= 576 + 256 } xs && (BinaryPrimitives.ReadUInt64LittleEndian(xs.AsSpan(512)) & 4) != 0)
        {
            ymm = new string[16];
            for (int i = 0; i < 16; i++) ymm[i] = Hex128(xs.AsSpan(576 + i * 16, 16));
        }
        return r with
        {
            FpuControlWord = BinaryPrimitives.ReadUInt16LittleEndian(fp),
            FpuStatusWord = BinaryPrimitives.ReadUInt16LittleEndian(fp.AsSpan(2)),
            Mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(fp.AsSpan(24)),
            Xmm = xmm,
            YmmHigh = ymm,
        };
    }

    /// <summary>A 128-bit register as 32 hex digits, most significant first (as gdb's uint128 shows it).</summary>
    private static string Hex128(ReadOnlySpan<byte> le)
    {
        Span<byte> be = stackalloc byte[16];
        for (int i = 0; i < 16; i++) be[i] = le[15 - i];
        return Convert.ToHexString(be).ToLowerInvariant();
    }
}
