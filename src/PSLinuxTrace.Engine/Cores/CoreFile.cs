using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// An open ELF core file: the notes parsed (threads, process info, signal, auxv, mapped files), the
/// PT_LOAD segments indexed, memory read in place from the memory-mapped core. Only the notes are
/// read on open, so a multi-GiB core opens at once.
/// </summary>
public sealed class CoreFile : IDisposable, IAddressSpace
{
    public sealed class ThreadNotes
    {
        public required CoreNotes.PrStatus Status { get; init; }
        public byte[]? FpRegs { get; set; }
        public byte[]? XState { get; set; }
        public CoreNotes.SigInfo? SigInfo { get; set; }
    }

    private readonly List<CoreMemoryMap.Segment> _segments = new();
    private readonly List<(ulong Start, ulong End, ulong FileOffset, ElfFile File)> _fileSources = new();

    public ElfFile Elf { get; }
    public string Path { get; }
    public List<ThreadNotes> Threads { get; } = new();
    public CoreNotes.PrPsInfo? PsInfo { get; private set; }
    public List<(ulong Type, ulong Value)> Auxv { get; private set; } = new();
    public List<CoreNotes.FileMapping> Files { get; private set; } = new();
    public List<ElfNote> OtherNotes { get; } = new();
    public bool IsTruncated { get; private set; }
    public ulong MissingBytes { get; private set; }
    internal IReadOnlyList<CoreMemoryMap.Segment> Segments => _segments;

    private CoreFile(ElfFile elf, string path)
    {
        Elf = elf;
        Path = path;
    }

    /// <summary>Opens a core. Not ELF, not ET_CORE, or corrupt notes: BadInputFormatException.</summary>
    public static CoreFile Open(string path) => FromElf(ElfFile.Open(path), path);

    /// <summary>A core held in memory (tests feed damaged copies through this).</summary>
    internal static CoreFile FromBytes(byte[] data, string name) => FromElf(ElfFile.FromBytes(data, name), name);

    private static CoreFile FromElf(ElfFile elf, string path)
    {
        try
        {
            if (elf.Header.Type != ElfType.Core)
                throw new BadInputFormatException($"{path} is an ELF {elf.Header.Type} file, not a core dump (ET_CORE).");
            if (elf.Header.Machine != ElfHeader.EM_X86_64)
                throw new BadInputFormatException($"{path} is a core of machine {elf.Header.Machine}; only x86_64 cores are supported.");
            var core = new CoreFile(elf, path);
            core.Load();
            return core;
        }
        catch
        {
            elf.Dispose();
            throw;
        }
    }

    private void Load()
    {
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
            _segments.Add(new CoreMemoryMap.Segment(p.VirtualAddress, p.VirtualAddress + p.MemorySize, p.Offset, available));
        }
        _segments.Sort((a, b) => a.Start.CompareTo(b.Start));

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

    /// <summary>Makes file-backed memory that the core left out readable from a local copy of the file.</summary>
    internal void AddFileSource(ulong start, ulong end, ulong fileOffset, ElfFile file) => _fileSources.Add((start, end, fileOffset, file));

    public int Read(ulong address, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = ReadSome(address + (ulong)done, buffer[done..]);
            if (n <= 0) break;
            done += n;
        }
        return done;
    }

    /// <summary>Reads as many contiguous bytes as one source has at <paramref name="address"/>.</summary>
    public int ReadSome(ulong address, Span<byte> buffer)
    {
        var seg = FindSegment(address);
        if (seg is { } s && address - s.Start < s.BytesInFile)
        {
            ulong n = Math.Min((ulong)buffer.Length, s.BytesInFile - (address - s.Start));
            Elf.GetBytes(s.FileOffset + (address - s.Start), n).CopyTo(buffer);
            return (int)n;
        }
        foreach (var (start, end, off, file) in _fileSources)
        {
            if (address < start || address >= end) continue;
            ulong fileOff = off + (address - start);
            if (fileOff >= (ulong)file.Length) return 0;
            ulong n = Math.Min(Math.Min((ulong)buffer.Length, end - address), (ulong)file.Length - fileOff);
            file.GetBytes(fileOff, n).CopyTo(buffer);
            return (int)n;
        }
        return 0;
    }

    internal CoreMemoryMap.Segment? FindSegment(ulong address)
    {
        int lo = 0, hi = _segments.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var s = _segments[mid];
            if (address < s.Start) hi = mid - 1;
            else if (address >= s.End) lo = mid + 1;
            else return s;
        }
        return null;
    }

    public void Dispose() => Elf.Dispose();
}
