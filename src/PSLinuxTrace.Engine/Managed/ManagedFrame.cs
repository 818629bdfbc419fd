using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// One frame of a .NET thread as the runtime's stack walk (ClrMD over the DAC) gives it: a managed method
/// (Kind Managed) or a marker the runtime keeps on the stack at a transition (Kind Runtime: an
/// InlinedCallFrame for a P/Invoke, say). <see cref="Rip"/>/<see cref="Rsp"/>/<see cref="Rbp"/> are its
/// registers, for resuming the native unwind below it.
/// </summary>
internal sealed record ManagedFrame(StackFrameKind Kind, ulong InstructionPointer, ulong StackPointer, string Name)
{
    public string? ModulePath { get; init; }
    public ulong Offset { get; init; }
    public int? ILOffset { get; init; }
    public string? File { get; init; }
    public int? Line { get; init; }
    public int? Column { get; init; }
    public ulong? Rbp { get; init; }
}

/// <summary>A process's managed frames, per thread; the ClrMD behind it is only loaded when a runtime is there.</summary>
internal interface IManagedFrameSource : IDisposable
{
    /// <summary>The thread's managed and runtime frames, innermost first; empty for a thread the runtime does not know.</summary>
    IReadOnlyList<ManagedFrame> Frames(int tid, ulong stackPointer);

    /// <summary>True when <paramref name="ip"/> is in a managed method's code (JIT'd or ReadyToRun).</summary>
    bool IsManagedCode(ulong ip);
}

/// <summary>A module as ClrMD is offered it: the image base (the mapping of file offset 0) and the path.</summary>
internal readonly record struct ClrModule(ulong ImageBase, string Path)
{
    /// <summary>
    /// The ELF modules of the map only (libcoreclr.so is how ClrMD finds the runtime; the DAC asks for images by
    /// name): the DAC finds the assemblies itself in the runtime's data, and a pwsh maps hundreds of them.
    /// </summary>
    public static List<ClrModule> From(Symbols.ModuleMap map)
    {
        var list = new List<ClrModule>();
        foreach (var m in map.Modules)
        {
            if (m.IsVdso || !m.Matches) continue;
            var first = m.Mappings.FirstOrDefault(x => x.FileOffset == 0);
            if (first.Path is not null) list.Add(new ClrModule(first.Start, m.Path));
        }
        return list;
    }
}
