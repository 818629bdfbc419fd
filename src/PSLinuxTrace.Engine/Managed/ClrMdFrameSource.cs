using System.Collections.Immutable;
using Microsoft.Diagnostics.Runtime;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// The managed frames of one .NET process (a core or a capture), from ClrMD over our own address space
/// (<see cref="AddressSpaceDataReader"/>) with the DAC that ships next to the target's libcoreclr.so.
/// Only <see cref="ManagedStacks"/> makes one, after it saw libcoreclr.so in the module list.
/// </summary>
internal sealed class ClrMdFrameSource : IManagedFrameSource
{
    private const int MaxManagedFrames = 1024;
    private readonly DataTarget _target;
    private readonly ClrRuntime _runtime;
    private readonly Dictionary<int, ClrThread> _threads;
    private readonly PortablePdbLines _lines;
    private readonly ILogger _log;

    private ClrMdFrameSource(DataTarget target, ClrRuntime runtime, string? sysRoot, ILogger log)
    {
        _target = target;
        _runtime = runtime;
        _log = log;
        _lines = new PortablePdbLines(sysRoot, log);
        _threads = new Dictionary<int, ClrThread>();
        foreach (var t in runtime.Threads)
            if (t.OSThreadId != 0) _threads.TryAdd((int)t.OSThreadId, t);
    }

    /// <summary>Opens the runtime with <paramref name="dacPath"/>; throws what ClrMD and the DAC throw.</summary>
    public static ClrMdFrameSource Open(string name, int pid, IAddressSpace memory, IReadOnlyList<ClrModule> modules,
        IReadOnlyDictionary<int, X64Registers> registers, string dacPath, string? sysRoot, ILogger log)
    {
        var reader = new AddressSpaceDataReader(name, pid, memory, modules, registers);
        // Our own locator: files on this machine only, never a symbol server.
        var target = new DataTarget(reader, new DataTargetOptions { FileLocator = new LocalFileLocator() });
        try
        {
            var clr = target.ClrVersions.FirstOrDefault()
                ?? throw new InvalidOperationException("ClrMD found no .NET runtime in the target's modules.");
            // ClrMD reads no version from an ELF module it did not open itself (0.0), so it cannot compare; the
            // match is ours: the target's libcoreclr.so has the build-id of the file the DAC ships next to.
            var runtime = clr.CreateRuntime(dacPath, ignoreMismatch: true);
            return new ClrMdFrameSource(target, runtime, sysRoot, log);
        }
        catch
        {
            target.Dispose();
            throw;
        }
    }

    public IReadOnlyList<ManagedFrame> Frames(int tid, ulong stackPointer)
    {
        if (!_threads.TryGetValue(tid, out var thread)) return [];
        var frames = new List<ManagedFrame>();
        bool first = true;
        foreach (var f in thread.EnumerateStackTrace(includeContext: true, MaxManagedFrames))
        {
            // A live thread that ran on after the pause can leave frames below the stack we copied: not ours.
            if (f.StackPointer < stackPointer) continue;
            var frame = f.Kind == ClrStackFrameKind.ManagedMethod && f.Method is { } m ? Managed(f, m, first) : Runtime(f);
            // The DAC reports an active InlinedCallFrame twice (its native and its managed side): one marker is enough.
            if (frame.Kind == StackFrameKind.Runtime && frames.Count > 0 && frames[^1] is { Kind: StackFrameKind.Runtime } prev
                && prev.StackPointer == frame.StackPointer && prev.Name == frame.Name) continue;
            frames.Add(frame);
            first = false;
        }
        return frames;
    }

    public bool IsManagedCode(ulong ip) => ip != 0 && _runtime.GetMethodByInstructionPointer(ip) is not null;

    private ManagedFrame Managed(ClrStackFrame f, ClrMethod m, bool innermost)
    {
        // A return address points after the call: its IL offset is the call's (innermost: the instruction itself).
        ulong lookup = innermost ? f.InstructionPointer : f.InstructionPointer - 1;
        int il = m.GetILOffset(lookup);
        string? modulePath = m.Type?.Module?.Name;
        var line = il >= 0 && modulePath is not null ? _lines.Find(modulePath, m.MetadataToken, il) : null;
        var regs = AddressSpaceDataReader.Registers(f.Context);
        return new ManagedFrame(StackFrameKind.Managed, f.InstructionPointer, f.StackPointer, m.Signature ?? m.Name ?? "??")
        {
            ModulePath = modulePath,
            Offset = m.NativeCode != 0 && f.InstructionPointer >= m.NativeCode ? f.InstructionPointer - m.NativeCode : 0,
            ILOffset = il >= 0 ? il : null,
            File = line?.File, Line = line?.Line, Column = line?.Column,
            Rbp = regs?.Rbp,
        };
    }

    private static ManagedFrame Runtime(ClrStackFrame f) =>
        new(StackFrameKind.Runtime, f.InstructionPointer, f.StackPointer, $"[{f.FrameName ?? "runtime frame"}]")
        {
            Rbp = AddressSpaceDataReader.Registers(f.Context)?.Rbp,
        };

    public void Dispose()
    {
        _lines.Dispose();
        _runtime.Dispose();
        _target.Dispose();
    }

    /// <summary>Binaries ClrMD asks for are looked up on this machine by path only: no symbol server, no network.</summary>
    private sealed class LocalFileLocator : IFileLocator
    {
        public string? FindPEImage(string fileName, int buildTimeStamp, int imageSize, bool checkProperties) =>
            File.Exists(fileName) ? fileName : null;

        public string? FindPEImage(string fileName, SymbolProperties archivedUnder, ImmutableArray<byte> buildIdOrUUID, System.Runtime.InteropServices.OSPlatform originalPlatform, bool checkProperties) =>
            File.Exists(fileName) ? fileName : null;

        public string? FindElfImage(string fileName, SymbolProperties archivedUnder, ImmutableArray<byte> buildId, bool checkProperties) =>
            File.Exists(fileName) ? fileName : null;

        public string? FindMachOImage(string fileName, SymbolProperties archivedUnder, ImmutableArray<byte> uuid, bool checkProperties) => null;
    }
}
