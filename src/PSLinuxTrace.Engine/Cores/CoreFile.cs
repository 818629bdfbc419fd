using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// An open ELF core file: the notes parsed (threads, process info, signal, auxv, mapped files), the
/// PT_LOAD segments indexed into its <see cref="Memory"/>, read in place from the memory-mapped core.
/// Only the notes are read on open, so a multi-GiB core opens at once (a compressed one once it is
/// decompressed into a temporary file, which goes away with this object).
/// </summary>
public sealed class CoreFile : IDisposable
{
    public sealed class ThreadNotes
    {
        public required CoreNotes.PrStatus Status { get; init; }
        public byte[]? FpRegs { get; set; }
        public byte[]? XState { get; set; }
        public CoreNotes.SigInfo? SigInfo { get; set; }
    }

    public ElfFile Elf { get; }
    public string Path { get; }
    public List<ThreadNotes> Threads { get; } = new();
    public CoreNotes.PrPsInfo? PsInfo { get; private set; }
    public List<(ulong Type, ulong Value)> Auxv { get; private set; } = new();
    public List<CoreNotes.FileMapping> Files { get; private set; } = new();
    public List<ElfNote> OtherNotes { get; } = new();
    public bool IsTruncated { get; private set; }
    public ulong MissingBytes { get; private set; }

    /// <summary>The process's memory: the segments, and (once the caller adds them) the mapped files the core left out.</summary>
    public CoreAddressSpace Memory { get; private set; } = null!;
    internal IReadOnlyList<CoreAddressSpace.Segment> Segments => Memory.Segments;

    private CoreFile(ElfFile elf, string path)
    {
        Elf = elf;
        Path = path;
    }

    /// <summary>How the file at <see cref="Path"/> is compressed (None: it is the ELF core itself).</summary>
    public CoreCompression Compression { get; private init; }
    /// <summary>The size of the file at <see cref="Path"/> (compressed or not); <c>Elf.Length</c> is the core's.</summary>
    public long FileSize { get; private init; }

    /// <summary>
    /// Opens a core, or a compressed one (zstd, LZ4 frame, xz: see <see cref="CoreInflater"/>), told apart
    /// by its first bytes. Not ELF, not ET_CORE, corrupt notes or corrupt compressed data: BadInputFormatException.
    /// </summary>
    /// <param name="progress">for a compressed core: compressed bytes decompressed so far, and of how many</param>
    public static CoreFile Open(string path, ILogger? log = null, CancellationToken cancel = default, Action<long, long>? progress = null)
    {
        var compression = CoreDecompressor.Detect(path);
        if (compression == CoreCompression.None)
        {
            var elf = ElfFile.Open(path);
            return FromElf(elf, path, compression, elf.Length);
        }
        long fileSize = new FileInfo(path).Length;
        var (inflated, plan) = CoreInflater.Inflate(path, compression, log ?? NullLogger.Instance, cancel, progress);
        return FromElf(ElfFile.Open(inflated, path), path, compression, fileSize,
            plan is null ? null : elf => new SplitCoreContents(elf, plan, new CompressedCoreContents(System.IO.Path.GetFullPath(path), compression)));
    }

    /// <summary>A core held in memory (tests feed damaged copies through this).</summary>
    internal static CoreFile FromBytes(byte[] data, string name) => FromElf(ElfFile.FromBytes(data, name), name, CoreCompression.None, data.Length);

    /// <param name="segments">where the segments' bytes are read from, when not all from <paramref name="elf"/></param>
    private static CoreFile FromElf(ElfFile elf, string path, CoreCompression compression, long fileSize, Func<ElfFile, IFileContents>? segments = null)
    {
        try
        {
            if (elf.Header.Type != ElfType.Core)
                throw new BadInputFormatException($"{path} is an ELF {elf.Header.Type} file, not a core dump (ET_CORE).");
            if (elf.Header.Machine != ElfHeader.EM_X86_64)
                throw new BadInputFormatException($"{path} is a core of machine {elf.Header.Machine}; only x86_64 cores are supported.");
            var core = new CoreFile(elf, path) { Compression = compression, FileSize = fileSize };
            core.Load(segments?.Invoke(elf) ?? elf);
            return core;
        }
        catch
        {
            elf.Dispose();
            throw;
        }
    }

    private void Load(IFileContents segmentBytes)
    {
        var segments = new List<CoreAddressSpace.Segment>();
        ulong fileLength = (ulong)Elf.Length;
        foreach (var p in Elf.ProgramHeaders)
        {
            if (p.Type != ElfProgramHeader.PT_LOAD || p.MemorySize == 0) continue;
            if (p.VirtualAddress + p.MemorySize < p.VirtualAddress) throw new BadInputFormatException($"{Path}: segment {p.Index} wraps around the address space.");
            ulong inFile = Math.Min(p.FileSize, p.MemorySize);
            ulong available = p.Offset >= fileLength ? 0 : Math.Min(inFile, fileLength - p.Offset);
            if (available < inFile)
            {
                IsTruncated = true;
                MissingBytes += inFile - available;
            }
            segments.Add(new CoreAddressSpace.Segment(p.VirtualAddress, p.VirtualAddress + p.MemorySize, p.Offset, available));
        }
        Memory = new CoreAddressSpace(Path, segmentBytes, segments);

        ThreadNotes? current = null;
        bool anyNote = false;
        foreach (var note in Elf.GetNotes())
        {
            anyNote = true;
            var d = note.Descriptor(Elf);
            bool core = note.Name is "CORE";
            bool linux = note.Name is "LINUX";
            switch (note.Type)
            {
                case ElfNote.NT_PRSTATUS when core:
                    current = new ThreadNotes { Status = CoreNotes.ParsePrStatus(d) };
                    Threads.Add(current);
                    break;
                case ElfNote.NT_PRPSINFO when core:
                    PsInfo = CoreNotes.ParsePrPsInfo(d);
                    break;
                case ElfNote.NT_PRFPREG when core:
                    if (current is not null) current.FpRegs = d.ToArray();
                    break;
                case ElfNote.NT_X86_XSTATE when linux:
                    if (current is not null) current.XState = d.ToArray();
                    break;
                case ElfNote.NT_SIGINFO when core:
                    var si = CoreNotes.ParseSigInfo(d);
                    if (current is not null) current.SigInfo = si;
                    else _pendingSigInfo = si; // gcore may write it before the first thread
                    break;
                case ElfNote.NT_AUXV when core:
                    Auxv = CoreNotes.ParseAuxv(d);
                    break;
                case ElfNote.NT_FILE when core:
                    Files = CoreNotes.ParseFileNote(d);
                    break;
                default:
                    OtherNotes.Add(note);
                    break;
            }
        }
        if (!anyNote) throw new BadInputFormatException($"{Path}: the core has no notes (no PT_NOTE segment): it cannot say which threads it holds.");
        if (Threads.Count == 0) throw new BadInputFormatException($"{Path}: the core has no NT_PRSTATUS note, so no thread.");
        if (_pendingSigInfo is not null && Threads[0].SigInfo is null) Threads[0].SigInfo = _pendingSigInfo;
    }

    private CoreNotes.SigInfo? _pendingSigInfo;

    public void Dispose() => Elf.Dispose();
}
