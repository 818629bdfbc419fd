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
/// first stack (again after an exec, or when a pc falls outside every module it knows: a library
/// dlopen'ed since), and files, their CFI and symbols are parsed once per trace, whatever the process.
/// </summary>
internal sealed class SyscallStacks(ILogger log, int maxFrames) : IDisposable
{
    private static readonly TimeSpan RemapAtMostEvery = TimeSpan.FromMilliseconds(100);
    private readonly Symbolizer _symbolizer = new(log);
    private readonly Dictionary<int, Process> _processes = new();

    private sealed class Process(MemoryFile memory, ModuleMap map)
    {
        public MemoryFile Memory { get; } = memory;
        public ModuleMap Map { get; set; } = map;
        public DateTime MappedAt { get; set; } = DateTime.UtcNow;
    }

    /// <summary>The stack of <paramref name="tid"/> (of process <paramref name="tgid"/>), stopped at a syscall stop; empty when it cannot be read.</summary>
    public StackFrame[] Capture(PtraceSession session, int tgid, int tid)
    {
        try
        {
            var regs = session.GetRegisters(tid);
            var process = ProcessOf(tgid);
            if (process is null) return [];
            if (process.Map.Find(regs.rip) is null && DateTime.UtcNow - process.MappedAt > RemapAtMostEvery)
            {
                // A pc no module holds: a library loaded since the map was made (or JIT code, which no map names).
                process.Map = Map(tgid, process.Memory);
                process.MappedAt = DateTime.UtcNow;
            }
            return _symbolizer.Backtrace(process.Map, regs, maxFrames);
        }
        catch (LinuxTraceException ex)
        {
            log.LogDebug("No stack for thread {Tid} of process {Pid}: {Message}", tid, tgid, ex.Message);
            return [];
        }
    }

    private Process? ProcessOf(int tgid)
    {
        if (_processes.TryGetValue(tgid, out var known)) return known;
        var memory = MemoryFile.Open(tgid);
        try
        {
            var process = new Process(memory, Map(tgid, memory));
            _processes[tgid] = process;
            return process;
        }
        catch
        {
            memory.Dispose();
            throw;
        }
    }

    private ModuleMap Map(int tgid, MemoryFile memory) => _symbolizer.MapModules(memory, ModuleLayout.FromProcess(tgid));

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
