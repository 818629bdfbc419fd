using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>
/// strace -k: the user stack of a thread at a syscall stop, unwound right there (the thread waits at the
/// stop, so its stack is exactly what made the call) through /proc/PID/mem, which pins nothing, with the
/// shared Symbolizer. What costs strace -k most is done once: each process's module map is built at its
/// first stack (again after an exec, and when a frame's pc falls outside every module it knows while
/// its file mappings in /proc/PID/maps have changed since: libc mapped by ld.so after the first stack, a
/// library dlopen'ed since), and files, their CFI and symbols are parsed once per trace, whatever the
/// process. A pc in no module with the file mappings unchanged (JIT code) costs one read of the maps.
/// </summary>
internal sealed class SyscallStacks(ILogger log, int maxFrames) : IDisposable
{
    private readonly Symbolizer _symbolizer = new(log);
    private readonly Dictionary<int, Process> _processes = new();

    private sealed class Process(MemoryFile memory)
    {
        public MemoryFile Memory { get; } = memory;
        public ModuleMap? Map { get; set; }
        /// <summary>The file mappings of /proc/PID/maps as they were when <see cref="Map"/> was built.</summary>
        public string FileMappings { get; set; } = "";
    }

    /// <summary>The stack of <paramref name="tid"/> (of process <paramref name="tgid"/>), stopped at a syscall stop; empty when it cannot be read.</summary>
    public StackFrame[] Capture(PtraceSession session, int tgid, int tid)
    {
        try
        {
            var regs = session.GetRegisters(tid);
            var process = ProcessOf(tgid);
            var map = process.Map!;
            var frames = _symbolizer.Unwind(map, regs, maxFrames);
            if (frames.Exists(f => map.Find(f.InstructionPointer) is null) && Remap(tgid, process))
            {
                map = process.Map!;
                frames = _symbolizer.Unwind(map, regs, maxFrames);
            }
            return _symbolizer.Symbolize(map, frames);
        }
        catch (LinuxTraceException ex)
        {
            log.LogDebug("No stack for thread {Tid} of process {Pid}: {Message}", tid, tgid, ex.Message);
            return [];
        }
    }

    /// <summary>Rebuilds the map when the process's mappings changed since it was built; false when they did not.</summary>
    private bool Remap(int tgid, Process process)
    {
        var maps = ProcFs.ReadMaps(tgid);
        // Only the file mappings make modules: a process that maps anonymous memory all the time (malloc, a
        // JIT) while a frame sits in JIT code must not be mapped again at every call.
        string files = string.Join('\n', maps.Where(m => m.Kind == MappingKind.File).Select(m => $"{m.Start:x}-{m.End:x} {m.Offset:x} {m.Path}"));
        if (process.Map is not null && files == process.FileMappings) return false;
        if (process.Map is not null)
            log.LogDebug("Process {Pid} mapped or unmapped files since its module map was made: mapping it again", tgid);
        process.Map = _symbolizer.MapModules(process.Memory, ModuleLayout.FromMaps(maps, ProcFs.ReadBytes(tgid, "auxv"), ProcFs.ReadComm(tgid)));
        process.FileMappings = files;
        return true;
    }

    private Process ProcessOf(int tgid)
    {
        if (_processes.TryGetValue(tgid, out var known)) return known;
        var process = new Process(MemoryFile.Open(tgid));
        try
        {
            Remap(tgid, process);
        }
        catch
        {
            process.Memory.Dispose();
            throw;
        }
        _processes[tgid] = process;
        return process;
    }

    /// <summary>A process exited or ran a new program: its map and memory go.</summary>
    public void Forget(int tgid)
    {
        if (_processes.Remove(tgid, out var p)) p.Memory.Dispose();
    }

    public void Dispose()
    {
        foreach (var p in _processes.Values) p.Memory.Dispose();
        _processes.Clear();
        _symbolizer.Dispose();
    }
}
