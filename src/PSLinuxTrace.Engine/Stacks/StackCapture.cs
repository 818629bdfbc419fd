using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Unwind;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Ptrace;
using PSLinuxTrace.Engine.Wire;

namespace PSLinuxTrace.Engine.Stacks;

/// <summary>
/// The pause of a live backtrace, as tbstack does it: every thread stopped (PTRACE_INTERRUPT, nothing the
/// process can see), its registers and the used part of its stack copied, the process resumed; the
/// unwinding happens afterwards while the process runs (<see cref="ProcessStackReader"/>). The stack is
/// read through /proc/PID/mem, which pins no page (process_vm_readv could unshare pages a process shares
/// with a child it forked), from 128 bytes below the stack pointer (the red zone) to the end of the
/// mapping it is in, at most <see cref="MaxStackBytes"/>. Runs in the tracer process.
/// </summary>
public static class StackCapture
{
    /// <summary>The deepest stack copied per thread; frames beyond it are unwound from live memory, if still there.</summary>
    public const int MaxStackBytes = 1 << 20;
    private const ulong RedZone = 128;

    public static CapturedProcess Capture(PtraceSession session, int pid, ILogger log, CancellationToken cancel)
    {
        if (pid == Environment.ProcessId) throw new ArgumentException("The tracer process cannot stop itself.");
        // The mappings before the pause, to find each stack without reading maps while the process waits.
        var before = ProcFs.ReadMaps(pid);
        var status = ProcFs.ReadStatus(pid);
        string comm = ProcFs.ReadComm(pid);
        string commandLine = string.Join(' ', ProcFs.ReadCommandLine(pid));
        var threads = new List<CapturedThread>();
        var warnings = new List<string>();
        var pause = Stopwatch.StartNew();
        DateTime at;
        using (CpuPin.ToCpuOf(pid, log))
        {
            var stopped = StoppedProcess.Stop(session, pid, log, cancel);
            try
            {
                at = DateTime.UtcNow;
                using var memory = MemoryFile.Open(pid);
                foreach (int tid in stopped.Threads)
                {
                    var regs = session.GetRegisters(tid);
                    var (start, bytes) = CopyStack(memory, regs.rsp, ref before, pid);
                    threads.Add(new CapturedThread { Tid = tid, Registers = regs.ToModel(), StackStart = start, Stack = bytes });
                }
            }
            finally
            {
                stopped.Resume();
            }
        }
        var paused = pause.Elapsed;
        log.LogInformation("Stopped {Count} thread(s) of process {Pid} for {Ms:F2} ms to copy their registers and {Kib} KiB of stack.",
            threads.Count, pid, paused.TotalMilliseconds, threads.Sum(t => t.Stack.Length) / 1024);
        string maps = ProcFs.ReadText(pid, "maps");
        byte[] auxv = ProcFs.ReadBytes(pid, "auxv");
        var named = threads.Select(t => t with { Name = ThreadName(pid, t.Tid) }).ToArray();
        if (status.State == 'T') warnings.Add($"Process {pid} was stopped (job control) before the capture; it is left stopped.");
        return new CapturedProcess
        {
            Pid = pid, ProcessName = comm, CommandLine = commandLine, Timestamp = at, Threads = named, Maps = maps, Auxv = auxv,
            PausedFor = paused, Warnings = [.. warnings],
        };
    }

    /// <summary>The used part of a thread's stack: [sp - red zone, end of the mapping holding sp), at most <see cref="MaxStackBytes"/>.</summary>
    private static (ulong Start, byte[] Bytes) CopyStack(MemoryFile memory, ulong sp, ref List<MemoryMapping> maps, int pid)
    {
        var mapping = maps.FirstOrDefault(m => m.Contains(sp));
        if (mapping is null)
        {
            // A thread made after the maps were read: its stack is a mapping we have not seen yet.
            maps = ProcFs.ReadMaps(pid);
            mapping = maps.FirstOrDefault(m => m.Contains(sp));
            if (mapping is null) return (sp, []);
        }
        ulong start = Math.Max(mapping.Start, sp >= RedZone ? sp - RedZone : 0);
        ulong length = Math.Min(mapping.End - start, MaxStackBytes);
        var bytes = new byte[length];
        int n = memory.Read(start, bytes);
        if (n < bytes.Length) Array.Resize(ref bytes, n);
        return (start, bytes);
    }

    private static string ThreadName(int pid, int tid)
    {
        try { return ProcFs.ReadText(pid, $"task/{tid}/comm").TrimEnd('\n'); }
        catch (LinuxTraceException) { return ""; }
    }
}
