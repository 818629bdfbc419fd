using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Unwind;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>Options of Read-CoreDump.</summary>
public sealed record CoreDumpOptions
{
    /// <summary>The executable to use instead of the path the core names.</summary>
    public string? ExecutablePath { get; init; }
    /// <summary>A copy of the target's filesystem: mapped files (and /usr/lib/debug) are looked up there first.</summary>
    public string? SysRoot { get; init; }
    public bool Backtraces { get; init; } = true;
    public int MaxFrames { get; init; } = 256;
}

/// <summary>
/// Turns a core file into a <see cref="CoreDump"/>: the notes, the mappings joined with their
/// file names, each mapped file found on this machine (or under SysRoot) and checked against the
/// build-id the core's own memory holds, and every thread's stack unwound with CFI (frame pointers
/// as a fallback) and symbolized from .symtab (a /usr/lib/debug file by build-id first), else .dynsym.
/// </summary>
public sealed class CoreDumpReader : IDisposable
{
    private readonly ILogger _log;
    // Files opened for symbols and CFI, kept for the reader's lifetime: piping many cores of one
    // program through one Read-CoreDump parses libc and the program once.
    private readonly Dictionary<string, (DateTime Stamp, ElfFile? File)> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<ElfFile, CallFrameInfo?> _cfi = new();

    public CoreDumpReader(ILogger log) => _log = log;

    public void Dispose()
    {
        foreach (var (_, f) in _files.Values) f?.Dispose();
        _files.Clear();
        _cfi.Clear();
    }

    /// <summary>Opens (or reuses) an ELF file; null when it is missing or not readable ELF.</summary>
    private ElfFile? OpenCached(string path)
    {
        DateTime stamp;
        // A damaged NT_FILE can name a file "" (FileInfo throws ArgumentException on it).
        if (string.IsNullOrEmpty(path) || path.Contains('\0')) return null;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) return null;
            stamp = info.LastWriteTimeUtc;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return null;
        }
        if (_files.TryGetValue(path, out var cached) && cached.Stamp == stamp) return cached.File;
        cached.File?.Dispose();
        ElfFile? elf = null;
        try
        {
            elf = ElfFile.Open(path);
        }
        catch (Exception ex) when (ex is BadInputFormatException or IOException or UnauthorizedAccessException)
        {
            _log.LogDebug("{Path}: not usable: {Message}", path, ex.Message);
        }
        _files[path] = (stamp, elf);
        return elf;
    }

    private CallFrameInfo? CfiOf(ElfFile elf)
    {
        if (_cfi.TryGetValue(elf, out var cfi)) return cfi;
        try
        {
            cfi = CallFrameInfo.Load(elf);
        }
        catch (BadInputFormatException ex)
        {
            _log.LogWarning("{Path}: unreadable call frame information ({Message}); using frame pointers there.", elf.Name, ex.Message);
        }
        return _cfi[elf] = cfi;
    }

    private sealed class Module
    {
        public required string Path { get; init; }
        public ulong Start { get; set; }
        public ulong End { get; set; }
        public string? CoreBuildId { get; set; }
        public ElfFile? Local { get; set; }
        public string? LocalPath { get; set; }
        public ElfFile? Debug { get; set; }
        public ulong Bias { get; set; }
        public bool BiasKnown { get; set; }
        public bool Matches { get; set; }
        /// <summary>Owned by this module (the vDSO image read from the core), not by the reader's cache.</summary>
        public bool OwnsLocal { get; set; }

        private CallFrameInfo? _cfi;
        private bool _cfiLoaded;

        /// <summary>The file's own CFI, then its separate debug file's (.debug_frame there covers what .eh_frame lacks).</summary>
        public CallFrameInfo? Cfi(CoreDumpReader reader)
        {
            if (!_cfiLoaded)
            {
                _cfi = CallFrameInfo.Combine(Local is null ? null : reader.CfiOf(Local), Debug is null ? null : reader.CfiOf(Debug));
                _cfiLoaded = true;
            }
            return _cfi;
        }

        public ElfSymbolTable? Symbols => Debug?.SymbolTable ?? Local?.SymbolTable ?? Local?.DynamicSymbols;
    }

    public CoreDump Read(string path, CoreDumpOptions? options = null, CancellationToken cancel = default)
    {
        using var core = CoreFile.Open(path);
        return Read(core, path, options, cancel);
    }

    internal CoreDump Read(CoreFile core, string path, CoreDumpOptions? options = null, CancellationToken cancel = default)
    {
        options ??= new CoreDumpOptions();
        var warnings = new List<string>();
        void Warn(string message)
        {
            warnings.Add(message);
            _log.LogWarning("{Message}", message);
        }

        _log.LogInformation("{Path}: {Threads} thread(s), {Segments} memory segment(s), {Files} mapped file(s).",
            path, core.Threads.Count, core.Segments.Count, core.Files.Count);
        if (core.IsTruncated)
            Warn($"{path} is truncated: {core.MissingBytes} bytes of the process's memory are missing (the dump was cut short or the disk filled up).");

        var modules = new List<Module>();
        try
        {
            // Group NT_FILE entries by file; the executable is the file that holds AT_PHDR.
            ulong atPhdr = core.Auxv.FirstOrDefault(a => a.Type == 3).Value;
            string? executable = null;
            foreach (var group in core.Files.GroupBy(f => f.Path))
            {
                var m = new Module { Path = group.Key, Start = group.Min(f => f.Start), End = group.Max(f => f.End) };
                if (atPhdr != 0 && group.Any(f => atPhdr >= f.Start && atPhdr < f.End)) executable = m.Path;
                modules.Add(m);
            }
            executable ??= core.PsInfo is { } ps ? modules.FirstOrDefault(m => System.IO.Path.GetFileName(StripDeleted(m.Path)).StartsWith(ps.FileName, StringComparison.Ordinal))?.Path : null;

            foreach (var m in modules)
            {
                cancel.ThrowIfCancellationRequested();
                var entries = core.Files.Where(f => f.Path == m.Path).ToList();
                var header = entries.FirstOrDefault(f => f.FileOffset == 0);
                if (header is not null) m.CoreBuildId = BuildIdFromMemory(core, header.Start);
                Resolve(m, m.Path == executable ? options.ExecutablePath : null, options.SysRoot, Warn);
                if (m.Local is not null)
                {
                    if (Symbols.LoadBiasFinder.Compute(m.Local, entries.Select(e => (e.Start, e.FileOffset))) is { } bias)
                    {
                        m.Bias = bias;
                        m.BiasKnown = true;
                    }
                    // Memory the core left out (text segments) comes from the local file, but only from the right one.
                    if (m.Matches)
                        foreach (var e in entries) core.Memory.AddFile(new CoreAddressSpace.FileRange(e.Start, e.End, e.FileOffset, m.LocalPath!), m.Local);
                }
                else if (header is not null && BiasFromMemory(core, header.Start) is { } b)
                {
                    m.Bias = b;
                    m.BiasKnown = true;
                }
            }

            // The vDSO is not a file, but the kernel dumps its image: read its CFI and symbols from the core.
            ulong vdsoBase = core.Auxv.FirstOrDefault(a => a.Type == 33).Value;
            if (vdsoBase != 0 && core.Memory.FindSegment(vdsoBase) is { } vseg && vseg.BytesInFile > 0 && vseg.BytesInFile <= 1 << 20)
            {
                var image = new byte[vseg.BytesInFile];
                if (core.Memory.TryRead(vseg.Start, image))
                {
                    try
                    {
                        var elf = ElfFile.FromBytes(image, "[vdso]");
                        var vm = new Module { Path = "[vdso]", Start = vseg.Start, End = vseg.End, Local = elf, Matches = true, OwnsLocal = true };
                        if (Symbols.LoadBiasFinder.Compute(elf, new[] { (vseg.Start, 0UL) }) is { } vb) { vm.Bias = vb; vm.BiasKnown = true; }
                        modules.Add(vm);
                    }
                    catch (BadInputFormatException ex)
                    {
                        _log.LogDebug("The vDSO image in the core is not readable ELF: {Message}", ex.Message);
                    }
                }
            }

            Module? ModuleAt(ulong pc)
            {
                foreach (var m in modules)
                    if (pc >= m.Start && pc < m.End) return m;
                return null;
            }

            var threads = new List<CoreThread>();
            var unwinder = new Unwinder(core.Memory, pc => ModuleAt(pc) is { BiasKnown: true } m ? new UnwindModule(m.Cfi(this), m.Bias) : null);
            int processSignal = core.Threads[0].Status.CurSig;
            for (int i = 0; i < core.Threads.Count; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var t = core.Threads[i];
                var regs = ToRegisters(t);
                var frames = Array.Empty<StackFrame>();
                if (options.Backtraces)
                {
                    var raw = unwinder.Unwind(Unwinder.FromUserRegs(t.Status.Registers), options.MaxFrames);
                    frames = new StackFrame[raw.Count];
                    for (int k = 0; k < raw.Count; k++)
                    {
                        var f = raw[k];
                        // Name the call, not the instruction after it (a noreturn call can end a function).
                        ulong lookup = k == 0 || raw[k - 1].IsSignalFrame || f.IsSignalFrame ? f.InstructionPointer : f.InstructionPointer - 1;
                        var m = ModuleAt(lookup);
                        string? name = null;
                        ulong offset = 0;
                        if (m is { BiasKnown: true } && m.Symbols is { } table)
                        {
                            try
                            {
                                if (table.FindContaining(lookup - m.Bias) is { } sym && sym.Name.Length > 0)
                                {
                                    name = sym.Name;
                                    offset = f.InstructionPointer - (sym.Value + m.Bias);
                                }
                            }
                            catch (BadInputFormatException ex)
                            {
                                _log.LogDebug("{Path}: damaged symbol table: {Message}", m.Path, ex.Message);
                            }
                        }
                        frames[k] = new StackFrame(k, f.InstructionPointer, f.StackPointer, name, offset, m?.Path, f.Method.ToString());
                    }
                }
                int sig = t.Status.CurSig;
                threads.Add(new CoreThread(t.Status.Pid, i == 0 && processSignal != 0, sig != 0 ? Signals.Name(sig) : null, sig, regs, frames));
            }

            var si = core.Threads[0].SigInfo;
            int signo = si?.SigNo ?? processSignal;
            var fileByStart = core.Files.ToLookup(f => f.Start);
            var mappings = core.Segments.Select(s =>
            {
                var p = core.Elf.ProgramHeaders.First(ph => ph.Type == ElfProgramHeader.PT_LOAD && ph.VirtualAddress == s.Start);
                var file = core.Files.FirstOrDefault(f => s.Start >= f.Start && s.Start < f.End);
                ulong fileOffset = file is null ? 0 : file.FileOffset + (s.Start - file.Start);
                return new CoreMapping(s.Start, s.End, fileOffset, p.Permissions, file?.Path, s.BytesInFile > 0, s.BytesInFile);
            }).ToArray();

            var memoryMap = core.Memory.Detach();

            string producer = core.OtherNotes.Any(n => n.Name == SnapshotNoteName) ? "PSLinuxTrace" : core.Elf.Sections.Count > 0 ? "Gdb" : "Kernel";
            var psinfo = core.PsInfo;
            return new CoreDump
            {
                Memory = memoryMap.Read,
                Path = System.IO.Path.GetFullPath(path),
                Pid = core.Threads[0].Status.Pid is var pid && psinfo is not null ? psinfo.Pid : pid,
                ParentId = psinfo?.PPid ?? core.Threads[0].Status.PPid,
                ProcessName = psinfo?.FileName ?? "",
                CommandLine = psinfo?.Arguments ?? "",
                UserId = psinfo?.Uid ?? 0,
                GroupId = psinfo?.Gid ?? 0,
                Signal = signo != 0 ? Signals.Name(signo) : null,
                SignalNumber = signo,
                SignalCode = si?.Code,
                SignalCodeName = si is null ? null : CoreNotes.SignalCodeName(si.SigNo, si.Code),
                FaultAddress = si is { SigNo: 4 or 5 or 7 or 8 or 11, Code: > 0 } ? si.Address : null,
                SenderPid = si is { Code: <= 0 } ? si.SenderPid : null,
                Executable = executable is null ? null : StripDeleted(executable),
                Threads = threads.ToArray(),
                Mappings = mappings,
                Auxv = core.Auxv.Select(a => new AuxvEntry(a.Type, CoreNotes.AuxvName(a.Type), a.Value)).ToArray(),
                BuildIds = modules.Where(m => m.Path != "[vdso]").Select(m => new ModuleBuildId(m.Path, m.CoreBuildId, m.LocalPath,
                    m.Local?.BuildIdHex, m.Matches, m.Bias)).ToArray(),
                IsTruncated = core.IsTruncated,
                Producer = producer,
                FileSize = core.Elf.Length,
                Warnings = warnings.ToArray(),
            };
        }
        finally
        {
            foreach (var m in modules)
                if (m.OwnsLocal) m.Local?.Dispose();
        }
    }

    /// <summary>
    /// The name of PSLinuxTrace's own notes: type 1 holds a launch snapshot's restore state, type 2
    /// ("PSLinuxTrace 0.1.0") is on every core Save-ProcessSnapshot writes, so Producer says who wrote it.
    /// </summary>
    public const string SnapshotNoteName = "PSLINUXTRACE";
    public const uint RestoreStateNoteType = 1, ProducerNoteType = 2;

    private static string StripDeleted(string path) => path.EndsWith(" (deleted)", StringComparison.Ordinal) ? path[..^10] : path;

    private void Resolve(Module m, string? executableOverride, string? sysRoot, Action<string> warn)
    {
        string path = StripDeleted(m.Path);
        var candidates = new List<string>();
        if (executableOverride is not null) candidates.Add(executableOverride);
        if (sysRoot is not null) candidates.Add(System.IO.Path.Join(sysRoot, path));
        if (executableOverride is null) candidates.Add(path);
        foreach (string c in candidates)
        {
            var elf = OpenCached(c);
            if (elf is null) continue;
            string? local = SafeBuildId(elf);
            if (m.CoreBuildId is not null && local is not null && local != m.CoreBuildId)
            {
                warn($"{c} does not match the file the process mapped as {m.Path} (build-id {local}, the core says {m.CoreBuildId}); its symbols are not used.");
                continue;
            }
            m.Local = elf;
            m.LocalPath = c;
            m.Matches = true;
            _log.LogDebug("{Path}: using {Local} (build-id {BuildId}).", m.Path, c, local ?? "none");
            break;
        }
        if (m.Local is null && m.Path != "[vdso]")
            _log.LogInformation("{Path}: no matching file on this machine{Where}; frames in it are not named.", m.Path, sysRoot is null ? "" : $" or under {sysRoot}");
        string? id = m.CoreBuildId ?? (m.Local is null ? null : SafeBuildId(m.Local));
        if (id is { Length: > 2 })
        {
            foreach (string root in sysRoot is null ? new[] { "/" } : new[] { sysRoot, "/" })
            {
                string debug = System.IO.Path.Join(root, "usr/lib/debug/.build-id", id[..2], id[2..] + ".debug");
                if (OpenCached(debug) is { } d)
                {
                    m.Debug = d;
                    _log.LogDebug("{Path}: symbols from {Debug}.", m.Path, debug);
                    break;
                }
            }
        }
    }

    private static string? SafeBuildId(ElfFile elf)
    {
        try { return elf.BuildIdHex; }
        catch (BadInputFormatException) { return null; }
    }

    /// <summary>Reads the ELF header at <paramref name="start"/> from the core's memory; returns its program headers, or null.</summary>
    private static List<(uint Type, ulong Offset, ulong Vaddr, ulong FileSize)>? PhdrsFromMemory(CoreFile core, ulong start)
    {
        Span<byte> eh = stackalloc byte[64];
        if (!core.Memory.TryRead(start, eh) || !ElfFile.HasElfMagic(eh) || eh[4] != 2) return null;
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(eh[32..]);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(eh[54..]), phnum = BinaryPrimitives.ReadUInt16LittleEndian(eh[56..]);
        if (phentsize < 56 || phnum == 0 || phnum > 256 || phoff > 65536) return null;
        var table = new byte[phnum * phentsize];
        if (!core.Memory.TryRead(start + phoff, table)) return null;
        var list = new List<(uint, ulong, ulong, ulong)>();
        for (int i = 0; i < phnum; i++)
        {
            var p = table.AsSpan(i * phentsize, 56);
            list.Add((BinaryPrimitives.ReadUInt32LittleEndian(p), BinaryPrimitives.ReadUInt64LittleEndian(p[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(p[16..]), BinaryPrimitives.ReadUInt64LittleEndian(p[32..])));
        }
        return list;
    }

    private static ulong? BiasFromMemory(CoreFile core, ulong start)
    {
        var phdrs = PhdrsFromMemory(core, start);
        var first = phdrs?.FirstOrDefault(p => p.Type == ElfProgramHeader.PT_LOAD && p.Offset == 0);
        return first is { } f && f.Type == ElfProgramHeader.PT_LOAD ? start - (f.Vaddr & ~0xfffUL) : null;
    }

    /// <summary>The build-id of the ELF file whose first page the core holds at <paramref name="start"/>.</summary>
    private static string? BuildIdFromMemory(CoreFile core, ulong start)
    {
        var phdrs = PhdrsFromMemory(core, start);
        if (phdrs is null || BiasFromMemory(core, start) is not { } bias) return null;
        foreach (var p in phdrs)
        {
            if (p.Type != ElfProgramHeader.PT_NOTE || p.FileSize == 0 || p.FileSize > 65536) continue;
            var notes = new byte[p.FileSize];
            if (!core.Memory.TryRead(bias + p.Vaddr, notes)) continue;
            int pos = 0;
            while (pos + 12 <= notes.Length)
            {
                int namesz = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(notes.AsSpan(pos)), 65536u);
                int descsz = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(notes.AsSpan(pos + 4)), 65536u);
                uint type = BinaryPrimitives.ReadUInt32LittleEndian(notes.AsSpan(pos + 8));
                int nameOff = pos + 12, descOff = nameOff + ((namesz + 3) & ~3);
                if (descOff + descsz > notes.Length) break;
                if (type == ElfNote.NT_GNU_BUILD_ID && namesz == 4 && notes.AsSpan(nameOff, 3).SequenceEqual("GNU"u8) && descsz is > 0 and <= 64)
                    return Convert.ToHexString(notes, descOff, descsz).ToLowerInvariant();
                pos = descOff + ((descsz + 3) & ~3);
            }
        }
        return null;
    }

    private static X64Registers ToRegisters(CoreFile.ThreadNotes t)
    {
        var r = X64Registers.FromUserRegs(t.Status.Registers);
        if (t.FpRegs is { Length: >= CoreNotes.FpRegsSize } fp)
        {
            var xmm = new string[16];
            for (int i = 0; i < 16; i++) xmm[i] = Hex128(fp.AsSpan(160 + i * 16, 16));
            string[]? ymm = null;
            // XSAVE layout: the YMM upper halves (component 2) sit at offset 576 when XSTATE_BV bit 2 is set.
            if (t.XState is { Length: >= 576 + 256 } xs && (BinaryPrimitives.ReadUInt64LittleEndian(xs.AsSpan(512)) & 4) != 0)
            {
                ymm = new string[16];
                for (int i = 0; i < 16; i++) ymm[i] = Hex128(xs.AsSpan(576 + i * 16, 16));
            }
            r = r with
            {
                FpuControlWord = BinaryPrimitives.ReadUInt16LittleEndian(fp),
                FpuStatusWord = BinaryPrimitives.ReadUInt16LittleEndian(fp.AsSpan(2)),
                Mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(fp.AsSpan(24)),
                Xmm = xmm,
                YmmHigh = ymm,
            };
        }
        return r;
    }

    /// <summary>A 128-bit register as 32 hex digits, most significant first (as gdb's uint128 shows it).</summary>
    private static string Hex128(ReadOnlySpan<byte> le)
    {
        Span<byte> be = stackalloc byte[16];
        for (int i = 0; i < 16; i++) be[i] = le[15 - i];
        return Convert.ToHexString(be).ToLowerInvariant();
    }
}
