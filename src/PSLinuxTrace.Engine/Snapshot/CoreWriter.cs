using System.Buffers.Binary;
using System.Text;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>Reads target memory at an address; returns how many bytes it read (0 when the first page is unreadable).</summary>
internal delegate int MemoryReadFunc(ulong address, Span<byte> buffer);

/// <summary>
/// Writes a standard x86_64 ELF core (the layout the kernel's binfmt_elf writes): the ELF header,
/// a PT_NOTE with NT_PRSTATUS/NT_PRPSINFO/NT_SIGINFO/NT_AUXV/NT_FILE/NT_FPREGSET/NT_X86_XSTATE,
/// then one page-aligned PT_LOAD per mapping. Pages of zeros become holes (a sparse file).
/// </summary>
internal static class CoreWriter
{
    internal const int PageSize = 4096;

    /// <summary>
    /// Creates the core file at <paramref name="path"/> anew. An existing file there (which the caller was told it
    /// may overwrite) is removed first, not truncated: ext4 writes out a file at its close when it was truncated or
    /// had its size set while empty ("auto_da_alloc", its guard against empty files after a crash), which for a
    /// 2 GiB core put 0.3-0.4 s of block allocation and disk submission into the snapshot's time, measured here.
    /// Created exclusively (O_EXCL), so a symbolic link planted at the path is never followed.
    /// </summary>
    internal static FileStream CreateFile(string path)
    {
        File.Delete(path);
        return new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, 1, FileOptions.None);
    }

    /// <summary>
    /// Writes <paramref name="image"/> to <paramref name="output"/>, a new empty file (<see cref="CreateFile"/>), pulling each segment's bytes from
    /// <paramref name="readMemory"/> (returns how many bytes it read at an address; unreadable bytes are written as zeros).
    /// Returns (bytes written to the file's extent, bytes that could not be read). <paramref name="memoryRead"/> runs
    /// as soon as the last byte of memory has been read (the rest is writing).
    /// </summary>
    public static (long FileSize, long Unreadable) Write(FileStream output, CoreImage image, MemoryReadFunc readMemory,
        Action<long, long>? progress, CancellationToken cancel, Action? memoryRead = null)
    {
        byte[] notes = BuildNotes(image);
        long dataOffset = Align(64 + TableSize(image, notes), PageSize);
        var ranges = new List<(ulong Address, long Offset, ulong Length)>();
        long position = dataOffset;
        foreach (var s in image.Segments)
        {
            s.CoreOffset = position;
            if (s.DumpSize > 0) ranges.Add((s.Start, position, s.DumpSize));
            position += (long)s.DumpSize;
        }
        long unreadable = Copy(output, ranges, readMemory, progress, cancel, sparse: true, memoryRead);
        long fileSize = WriteHeaders(output, image, dataOffset, position, notes);
        output.Flush(flushToDisk: false);
        return (fileSize, unreadable);
    }

    /// <summary>
    /// Copies memory into the file: each range's <c>Length</c> bytes at <c>Address</c> go to file offset
    /// <c>Offset</c>, in chunks of up to 1 MiB that a worker per CPU (at most four) reads and writes, each with
    /// its own buffer. Writing into the page cache is most of the cost (every new page of the file is a fresh
    /// page of memory), and one thread per CPU doing both halves keeps every CPU copying, where one reader
    /// and one writer left the reader idle. The calling thread is one of the workers and reports progress.
    /// <paramref name="sparse"/>: pages of zeros are skipped (holes in a new file, which has none there yet); else
    /// every byte is written. Unreadable pages are written as zeros; returns how many bytes were.
    /// <paramref name="memoryRead"/> runs (on whichever worker) as soon as the last byte has been read.
    /// </summary>
    internal static long Copy(FileStream output, IReadOnlyList<(ulong Address, long Offset, ulong Length)> ranges, MemoryReadFunc readMemory,
        Action<long, long>? progress, CancellationToken cancel, bool sparse, Action? memoryRead = null)
    {
        // 1 MiB: a chunk read into a buffer that stays in the CPU's cache is written out from the cache. With 8 MiB
        // chunks, 512 MiB took 160-200 ms here against 107-123 ms (2 GiB: 460-515 against 410-445); 256 KiB is slower again.
        const ulong ChunkSize = 1 << 20;
        const int MaxWorkers = 4;
        var chunks = new List<(ulong Address, long Offset, int Length)>();
        foreach (var (address, offset, length) in ranges)
            for (ulong at = 0; at < length; at += ChunkSize)
                chunks.Add((address + at, offset + (long)at, (int)Math.Min(ChunkSize, length - at)));
        long total = chunks.Sum(c => (long)c.Length);
        if (chunks.Count == 0)
        {
            memoryRead?.Invoke();
            return 0;
        }
        var file = output.SafeFileHandle;
        int bufferSize = chunks.Max(c => c.Length);
        int next = -1, readsLeft = chunks.Count;
        long done = 0, unreadable = 0, reported = 0;
        void Report(long now)
        {
            reported = now;
            progress?.Invoke(now, total);
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        Workers.Run(Math.Min(chunks.Count, Workers.Count(MaxWorkers)), reports =>
        {
            var buffer = new byte[bufferSize];
            int i;
            while (!stop.IsCancellationRequested && (i = Interlocked.Increment(ref next)) < chunks.Count)
            {
                var (address, offset, length) = chunks[i];
                var chunk = buffer.AsSpan(0, length);
                Interlocked.Add(ref unreadable, ReadFully(address, chunk, readMemory));
                if (Interlocked.Decrement(ref readsLeft) == 0) memoryRead?.Invoke();
                if (sparse) WriteSparse(file, chunk, offset);
                else RandomAccess.Write(file, chunk, offset);
                long now = Interlocked.Add(ref done, length);
                if (reports) Report(now);
            }
        }, stop, () => Report(Interlocked.Read(ref done)));
        cancel.ThrowIfCancellationRequested();
        if (reported != total) Report(total); // the last chunk was another thread's
        return unreadable;
    }

    /// <summary>Fills <paramref name="chunk"/> from memory at <paramref name="address"/>; unreadable pages become zeros. Returns how many bytes were.</summary>
    internal static long ReadFully(ulong address, Span<byte> chunk, MemoryReadFunc readMemory)
    {
        long unreadable = 0;
        int got = 0;
        while (got < chunk.Length)
        {
            int n = readMemory(address + (ulong)got, chunk[got..]);
            if (n > 0) { got += n; continue; }
            // An unreadable page: zeros, then go on with the next page.
            int skip = Math.Min(chunk.Length - got, PageSize - (int)((address + (ulong)got) % PageSize));
            chunk.Slice(got, skip).Clear();
            unreadable += skip;
            got += skip;
        }
        return unreadable;
    }

    /// <summary>
    /// Writes the ELF header at 0, and the program headers and notes of <paramref name="image"/>, whose
    /// segments carry their own CoreOffset, after it when they fit in <paramref name="reserved"/> bytes,
    /// else at <paramref name="dataEnd"/> (e_phoff may point anywhere). Returns the file's size.
    /// </summary>
    internal static long WriteHeaders(FileStream output, CoreImage image, long reserved, long dataEnd, byte[]? notes = null)
    {
        notes ??= BuildNotes(image);
        long tableSize = TableSize(image, notes);
        int phnum = 1 + image.Segments.Count;
        long phoff = 64 + tableSize <= reserved ? 64 : Align(dataEnd, 8);
        var table = new byte[tableSize];
        var ph = table.AsSpan();
        WritePhdr(ph, ElfProgramHeader.PT_NOTE, 0, (ulong)(phoff + (long)phnum * 56), 0, (ulong)notes.Length, 0, 4);
        for (int i = 0; i < image.Segments.Count; i++)
        {
            var s = image.Segments[i];
            WritePhdr(ph[((i + 1) * 56)..], ElfProgramHeader.PT_LOAD, s.Flags, (ulong)Math.Max(0, s.CoreOffset), s.Start, s.DumpSize, s.End - s.Start, PageSize);
        }
        notes.CopyTo(ph[(phnum * 56)..]);
        RandomAccess.Write(output.SafeFileHandle, BuildElfHeader(phnum, (ulong)phoff), 0);
        RandomAccess.Write(output.SafeFileHandle, table, phoff);
        long size = Math.Max(dataEnd, phoff + tableSize);
        // The file ends at the last segment's end even when its last pages are holes. A zero byte written there
        // rather than ftruncate(): ext4 writes out at close every file whose size was ever set (see CreateFile).
        long length = output.Length;
        if (length < size) RandomAccess.Write(output.SafeFileHandle, new byte[1], size - 1);
        else if (length > size) output.SetLength(size);
        return size;
    }

    /// <summary>The program header table and the notes after it, in bytes.</summary>
    private static long TableSize(CoreImage image, byte[] notes)
    {
        int phnum = 1 + image.Segments.Count;
        if (phnum >= 0xffff) throw new NotSupportedException("More than 65534 mappings (PN_XNUM) is not supported by this writer.");
        return (long)phnum * 56 + notes.Length;
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="position"/>, each run of non-zero pages in one write; pages of zeros are left as holes.</summary>
    private static void WriteSparse(Microsoft.Win32.SafeHandles.SafeFileHandle file, ReadOnlySpan<byte> data, long position)
    {
        int off = 0;
        while (off < data.Length)
        {
            int page = Math.Min(PageSize, data.Length - off);
            if (data.Slice(off, page).IndexOfAnyExcept((byte)0) < 0) { off += page; continue; } // a hole
            int end = off + page;
            while (end < data.Length)
            {
                int next = Math.Min(PageSize, data.Length - end);
                if (data.Slice(end, next).IndexOfAnyExcept((byte)0) < 0) break;
                end += next;
            }
            RandomAccess.Write(file, data[off..end], position + off);
            off = end;
        }
    }

    /// <summary>The 64-byte ELF header of an x86_64 core with <paramref name="phnum"/> program headers at <paramref name="phoff"/>.</summary>
    private static byte[] BuildElfHeader(int phnum, ulong phoff)
    {
        var header = new byte[64];
        var h = header.AsSpan();
        "\u007fELF"u8.CopyTo(h);
        h[4] = 2; h[5] = 1; h[6] = 1; h[7] = 0; // ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], (ushort)ElfType.Core);
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], ElfHeader.EM_X86_64);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], phoff);     // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(h[52..], 64);        // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(h[54..], 56);        // e_phentsize
        BinaryPrimitives.WriteUInt16LittleEndian(h[56..], (ushort)phnum);
        BinaryPrimitives.WriteUInt16LittleEndian(h[58..], 64);        // e_shentsize
        return header;
    }

    private static void WritePhdr(Span<byte> p, uint type, uint flags, ulong offset, ulong vaddr, ulong filesz, ulong memsz, ulong align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], filesz);
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], memsz);
        BinaryPrimitives.WriteUInt64LittleEndian(p[48..], align);
    }

    internal static long Align(long v, long a) => (v + a - 1) / a * a;

    internal static byte[] BuildNotes(CoreImage image)
    {
        var ms = new MemoryStream();
        for (int i = 0; i < image.Threads.Count; i++)
        {
            var t = image.Threads[i];
            Note(ms, "CORE", ElfNote.NT_PRSTATUS, PrStatus(image, t));
            if (i == 0)
            {
                Note(ms, "CORE", ElfNote.NT_PRPSINFO, PrPsInfo(image));
                Note(ms, "CORE", ElfNote.NT_SIGINFO, image.SigInfo ?? new byte[CoreNotes.SigInfoSize]);
                Note(ms, "CORE", ElfNote.NT_AUXV, image.Auxv);
                Note(ms, "CORE", ElfNote.NT_FILE, FileNote(image));
            }
            if (t.FpRegs is not null) Note(ms, "CORE", ElfNote.NT_PRFPREG, t.FpRegs);
            if (t.XState is not null) Note(ms, "LINUX", ElfNote.NT_X86_XSTATE, t.XState);
        }
        foreach (var (name, type, desc) in image.ExtraNotes) Note(ms, name, type, desc);
        // Who wrote the core (Read-CoreDump's Producer), on live and launch snapshots alike; gdb skips notes it does not know.
        Note(ms, Cores.CoreDumpReader.SnapshotNoteName, Cores.CoreDumpReader.ProducerNoteType, Encoding.ASCII.GetBytes($"PSLinuxTrace {ProducerVersion}\0"));
        return ms.ToArray();
    }

    private static readonly string ProducerVersion = typeof(CoreWriter).Assembly.GetName().Version?.ToString(3) ?? "0";

    private static void Note(Stream s, string name, uint type, byte[] desc)
    {
        byte[] n = Encoding.ASCII.GetBytes(name + "\0");
        Span<byte> h = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)n.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], type);
        s.Write(h);
        s.Write(n);
        s.Write(new byte[(4 - n.Length % 4) % 4]);
        s.Write(desc);
        s.Write(new byte[(4 - desc.Length % 4) % 4]);
    }

    private static byte[] PrStatus(CoreImage image, CoreImage.Thread t)
    {
        var d = new byte[CoreNotes.PrStatusSize];
        var s = d.AsSpan();
        BinaryPrimitives.WriteInt32LittleEndian(s, t.CurrentSignal);          // pr_info.si_signo
        BinaryPrimitives.WriteInt16LittleEndian(s[12..], (short)t.CurrentSignal); // pr_cursig
        BinaryPrimitives.WriteInt32LittleEndian(s[32..], t.Tid);
        BinaryPrimitives.WriteInt32LittleEndian(s[36..], image.ParentPid);
        BinaryPrimitives.WriteInt32LittleEndian(s[40..], image.ProcessGroup);
        BinaryPrimitives.WriteInt32LittleEndian(s[44..], image.Session);
        CoreNotes.WriteUserRegs(s.Slice(CoreNotes.PrStatusRegOffset, Interop.UserRegsX64.Size), t.Registers);
        BinaryPrimitives.WriteInt32LittleEndian(s[328..], t.FpRegs is null ? 0 : 1); // pr_fpvalid
        return d;
    }

    private static byte[] PrPsInfo(CoreImage image)
    {
        var d = new byte[CoreNotes.PrPsInfoSize];
        var s = d.AsSpan();
        const string states = "RSDTZW";
        int stateIndex = states.IndexOf(image.State);
        s[0] = (byte)Math.Max(0, stateIndex);
        s[1] = (byte)image.State;
        s[2] = (byte)(image.State == 'Z' ? 1 : 0);
        s[3] = (byte)(sbyte)image.Nice;
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], image.Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], image.Uid);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], image.Gid);
        BinaryPrimitives.WriteInt32LittleEndian(s[24..], image.Pid);
        BinaryPrimitives.WriteInt32LittleEndian(s[28..], image.ParentPid);
        BinaryPrimitives.WriteInt32LittleEndian(s[32..], image.ProcessGroup);
        BinaryPrimitives.WriteInt32LittleEndian(s[36..], image.Session);
        var comm = Encoding.UTF8.GetBytes(image.Comm);
        comm.AsSpan(0, Math.Min(15, comm.Length)).CopyTo(s[40..]);
        var args = Encoding.UTF8.GetBytes(image.Arguments);
        args.AsSpan(0, Math.Min(79, args.Length)).CopyTo(s[56..]);
        return d;
    }

    private static byte[] FileNote(CoreImage image)
    {
        var files = image.Segments.Where(s => s.Path is not null && s.Path.StartsWith('/')).ToList();
        var ms = new MemoryStream();
        var b = new byte[8];
        void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(b, v); ms.Write(b); }
        U64((ulong)files.Count);
        U64(PageSize);
        foreach (var f in files) { U64(f.Start); U64(f.End); U64(f.FileOffset / PageSize); }
        foreach (var f in files) { ms.Write(Encoding.UTF8.GetBytes(f.Path!)); ms.WriteByte(0); }
        return ms.ToArray();
    }
}
