using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Diagnostics.Runtime;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// ClrMD's view of a target through our own pieces: memory from the <see cref="IAddressSpace"/> the
/// native unwinder reads (a core's segments and files, or a capture's copied stacks over the live
/// process), modules from the <see cref="ModuleMap"/> (NT_FILE or /proc/PID/maps, as <see cref="ClrModule.From"/> lists them), thread contexts from
/// the registers we already hold (PRSTATUS, or those captured at the pause). ClrMD never opens the
/// process or the core itself.
/// </summary>
internal sealed class AddressSpaceDataReader(string name, int pid, IAddressSpace memory, IReadOnlyList<ClrModule> modules,
    IReadOnlyDictionary<int, X64Registers> registers) : IDataReader
{
    // AMD64 CONTEXT (winnt.h): ContextFlags at 0x30, the integer registers from Rax at 0x78, Rip at 0xF8.
    private const int ContextSize = 0x4D0, ContextFlagsOffset = 0x30, SegCsOffset = 0x38, SegSsOffset = 0x42,
        EFlagsOffset = 0x44, RaxOffset = 0x78, RipOffset = 0xF8;
    private const uint ContextAmd64Full = 0x10000B; // CONTEXT_AMD64 | CONTROL | INTEGER | FLOATING_POINT

    public string DisplayName => name;
    public bool IsThreadSafe => false;
    public OSPlatform TargetPlatform => OSPlatform.Linux;
    public Architecture Architecture => Architecture.X64;
    public int ProcessId => pid;
    public int PointerSize => 8;

    public IEnumerable<ModuleInfo> EnumerateModules()
    {
        foreach (var m in modules)
            if (ModuleInfo.TryCreate(this, m.ImageBase, m.Path) is { } info) yield return info;
    }

    public bool GetThreadContext(uint threadID, uint contextFlags, Span<byte> context)
    {
        if (!registers.TryGetValue((int)threadID, out var r) || context.Length < ContextSize) return false;
        context[..ContextSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(context[ContextFlagsOffset..], ContextAmd64Full);
        BinaryPrimitives.WriteUInt16LittleEndian(context[SegCsOffset..], (ushort)r.Cs);
        BinaryPrimitives.WriteUInt16LittleEndian(context[SegSsOffset..], (ushort)r.Ss);
        BinaryPrimitives.WriteUInt32LittleEndian(context[EFlagsOffset..], (uint)r.Eflags);
        // Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8..R15, then Rip: CONTEXT's order.
        ulong[] integer = [r.Rax, r.Rcx, r.Rdx, r.Rbx, r.Rsp, r.Rbp, r.Rsi, r.Rdi, r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15, r.Rip];
        for (int i = 0; i < integer.Length; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(context[(RaxOffset + 8 * i)..], integer[i]);
        return true;
    }

    public void FlushCachedData() { }

    // The DAC reads the runtime's structures a few bytes at a time, each a system call on a live process
    // (/proc/PID/mem): pages are read once per source and kept. A capture's stacks are copies anyway, and
    // the rest of a live process is read after the pause, so caching loses no consistency.
    private const int PageSize = 4096;
    private const int MaxCachedPages = 16384; // 64 MiB at most
    private readonly Dictionary<ulong, byte[]?> _pages = new();

    public int Read(ulong address, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            ulong at = address + (ulong)done;
            ulong page = at & ~(ulong)(PageSize - 1);
            var bytes = Page(page);
            int inPage = (int)(at - page);
            if (bytes is null || bytes.Length <= inPage) break;
            int n = Math.Min(buffer.Length - done, bytes.Length - inPage);
            bytes.AsSpan(inPage, n).CopyTo(buffer[done..]);
            done += n;
            if (bytes.Length < PageSize) break; // the readable memory ends inside this page
        }
        return done;
    }

    /// <summary>The readable bytes of one page (fewer than a page where memory ends), or null when none are.</summary>
    private byte[]? Page(ulong page)
    {
        if (_pages.TryGetValue(page, out var cached)) return cached;
        var bytes = new byte[PageSize];
        int n;
        try { n = memory.Read(page, bytes); }
        catch (LinuxTraceException) { n = 0; } // the live process is gone: that memory is just unreadable
        var result = n == 0 ? null : n == PageSize ? bytes : bytes[..n];
        if (_pages.Count < MaxCachedPages) _pages[page] = result;
        return result;
    }

    public bool Read<T>(ulong address, out T value) where T : unmanaged
    {
        Span<byte> bytes = stackalloc byte[16];
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        var buffer = size <= bytes.Length ? bytes[..size] : new byte[size];
        if (Read(address, buffer) != size) { value = default; return false; }
        value = MemoryMarshal.Read<T>(buffer);
        return true;
    }

    public T Read<T>(ulong address) where T : unmanaged => Read(address, out T value) ? value : default;

    public bool ReadPointer(ulong address, out ulong value) => Read(address, out value);

    public ulong ReadPointer(ulong address) => ReadPointer(address, out ulong value) ? value : 0;

    /// <summary>The offsets of a CONTEXT's Rip, Rsp and Rbp (for frames ClrMD gives us with their context).</summary>
    internal static (ulong Rip, ulong Rsp, ulong Rbp)? Registers(ReadOnlySpan<byte> context) =>
        context.Length < RipOffset + 8 ? null : (
            BinaryPrimitives.ReadUInt64LittleEndian(context[RipOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(context[(RaxOffset + 8 * 4)..]),
            BinaryPrimitives.ReadUInt64LittleEndian(context[(RaxOffset + 8 * 5)..]));
}
