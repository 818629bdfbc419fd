using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Unwind;
using PSLinuxTrace.Engine.Wire;
using PSLinuxTrace.Engine.Managed;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Engine.Stacks;

/// <summary>
/// Live backtraces (Get-ProcessStack), the job of eu-stack -p, gdb's `thread apply all bt` and pstack:
/// each process is paused only to copy its threads' registers and stacks (<see cref="StackCapture"/>, in
/// the tracer process), and unwound and symbolized here afterwards, while it runs, by the same
/// Symbolizer as Read-CoreDump, rented from <see cref="SymbolizerPool"/>: libc is parsed once however many
/// processes are read, and once per session rather than once per command.
/// </summary>
public sealed class ProcessStackReader(ILogger log) : IDisposable
{
    private readonly SymbolizerPool.Lease _lease = SymbolizerPool.Rent(log);

    /// <summary>Frames per thread at most.</summary>
    public int MaxFrames { get; init; } = 256;

    /// <summary>Managed frames for .NET processes (ClrMD over the runtime's DAC); false: native frames only, as for any process.</summary>
    public bool ManagedFrames { get; init; } = true;

    /// <summary>
    /// Captures each process in turn and calls <paramref name="onStack"/> with its stacks, or
    /// <paramref name="onError"/> with why it could not, on the calling thread, while the tracer process
    /// goes on with the next one.
    /// </summary>
    public void Read(IReadOnlyList<int> pids, Action<ProcessStack> onStack, Action<int, Exception> onError, CancellationToken cancel)
    {
        var wanted = new List<int>();
        foreach (int pid in pids.Distinct())
        {
            try { Preflight(pid); wanted.Add(pid); }
            catch (LinuxTraceException ex) { onError(pid, ex); }
        }
        if (wanted.Count == 0) return;
        if (TracerHost.RunsInPlace)
        {
            using var session = new PtraceSession(log);
            foreach (int pid in wanted)
            {
                cancel.ThrowIfCancellationRequested();
                try { onStack(Unwind(StackCapture.Capture(session, pid, log, cancel))); }
                catch (LinuxTraceException ex) { onError(pid, ex); }
            }
            return;
        }
        TracerClient.RunMany(new TracerRequest { Operation = TracerOperation.CaptureStacks, Pids = [.. wanted] }, log,
            o => onStack(Unwind((CapturedProcess)o)), onError, cancel);
    }

    /// <summary>What ptrace would refuse with a bare EPERM that reads like a permission problem.</summary>
    private static void Preflight(int pid)
    {
        if (pid <= 0 || !ProcFs.Exists(pid)) throw new ProcessNotFoundException(pid);
        var status = ProcFs.ReadStatus(pid);
        if (status.Fields.TryGetValue("Kthread", out var k) && k == "1")
            throw new UnsupportedFeatureException("Backtraces of a kernel thread", null, $"process {pid} is a kernel thread: it has no user stack.", byKernel: false);
        if (status.State is 'Z' or 'X')
            throw new ProcessNotFoundException(pid, $"Process {pid} has exited (it is a zombie waiting for its parent); it has no stacks left.");
    }

    /// <summary>Unwinds and symbolizes a capture over its copied stacks and the live process.</summary>
    internal ProcessStack Unwind(CapturedProcess c)
    {
        var sw = Stopwatch.StartNew();
        var warnings = new List<string>(c.Warnings);
        MemoryFile? live = null;
        try { live = MemoryFile.Open(c.Pid); }
        catch (LinuxTraceException ex) { warnings.Add($"Process {c.Pid} could not be read after the pause ({ex.Message}); frames come from the copied stacks only."); }
        using (live)
        {
            var memory = new CapturedMemory(c.Threads, live);
            var layout = ModuleLayout.FromMaps(MemoryMapping.ParseAll(c.Maps), c.Auxv, c.ProcessName);
            var map = _lease.Symbolizer.MapModules(memory, layout, warn: warnings.Add);
            using var managed = OpenManaged(c, map, memory, warnings);
            var threads = c.Threads.Select(t => new CoreThread(t.Tid, false, null, 0, t.Registers,
                StackInterleaver.Backtrace(_lease.Symbolizer, map, t.Registers, t.Tid, MaxFrames, memory, managed)) { Name = t.Name }).ToArray();
            foreach (var w in warnings.Skip(c.Warnings.Length)) log.LogWarning("{Message}", w);
            return new ProcessStack
            {
                Pid = c.Pid, ProcessName = c.ProcessName, CommandLine = c.CommandLine, Timestamp = c.Timestamp, Threads = threads,
                PausedFor = c.PausedFor, Duration = c.PausedFor + sw.Elapsed, Warnings = [.. warnings],
            };
        }
    }

    /// <summary>ClrMD over the capture when the process runs .NET (null otherwise, and ClrMD stays unloaded).</summary>
    private IManagedFrameSource? OpenManaged(CapturedProcess c, ModuleMap map, CapturedMemory memory, List<string> warnings)
    {
        if (!ManagedFrames || ManagedStacks.FindRuntime(map) is null) return null;
        if (c.Pid == Environment.ProcessId)
        {
            // This runtime runs on (the very threads that answer the worker's reads) while the DAC reads it: in
            // the ClrMD worker it crashed on about every second capture here (SIGSEGV, .NET 10.0.12). Our own
            // stacks stay native rather than come with a warning every other time.
            log.LogInformation("Process {Pid} is this process: its managed frames are not read (its runtime keeps running while the .NET debugging library reads it).", c.Pid);
            return null;
        }
        var registers = c.Threads.GroupBy(t => t.Tid).ToDictionary(g => g.Key, g => g.First().Registers);
        return ManagedStacks.TryOpen($"process {c.Pid}", c.Pid, map, memory, registers, null, warnings.Add, log);
    }

    public void Dispose() => _lease.Dispose();
}
