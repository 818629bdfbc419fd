using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Tracing.Bpf;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>Which engine Start-SyscallTrace should use: Auto picks eBPF whenever it can serve the request.</summary>
public enum SyscallEngine { Auto, Bpf, Ptrace }

/// <summary>The engine a trace runs with, and why (for -Verbose).</summary>
public sealed record SyscallEngineChoice(TraceEngine Engine, string Reason);

/// <summary>
/// Picks the engine for a request and starts it. What only ptrace can do: read the tracee at a
/// moment of its choosing (stack traces: <see cref="SyscallTraceOptions.StackFrames"/>), copy more
/// than 32 KiB of a buffer (-StringLimit above <see cref="BpfSyscallObject.MaxCopy"/>), and run
/// inside a pid namespace other than the initial one (the kernel program sees that namespace's ids).
/// The eBPF engine needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) and kernel BTF.
/// </summary>
public static class SyscallTraceEngines
{
    private const int CapSysAdmin = 21, CapPerfmon = 38, CapBpf = 39;   // include/uapi/linux/capability.h

    /// <summary>Decides without loading anything; -Engine Bpf that cannot run is an error (PermissionDenied naming the capabilities).</summary>
    public static SyscallEngineChoice Choose(SyscallEngine requested, SyscallTraceOptions options)
    {
        if (requested == SyscallEngine.Ptrace) return new(TraceEngine.Ptrace, "-Engine Ptrace was asked for");
        string? ptraceOnly = PtraceOnlyNeed(options);
        string? missing = MissingCapabilities();
        if (requested == SyscallEngine.Bpf)
        {
            if (missing is not null)
                throw new TargetPermissionDeniedException($"The eBPF engine needs {missing} (or root), which this process does not have.", missing);
            if (ptraceOnly is not null) throw new ArgumentException($"The eBPF engine cannot serve this request: {ptraceOnly}. Use -Engine Ptrace or Auto.");
            return new(TraceEngine.Bpf, "-Engine Bpf was asked for");
        }
        if (ptraceOnly is not null) return new(TraceEngine.Ptrace, $"Auto: {ptraceOnly}, which only the ptrace engine does");
        if (missing is not null) return new(TraceEngine.Ptrace, $"Auto: this process lacks {missing}, which the eBPF engine needs");
        if (!File.Exists(Btf.VmlinuxPath)) return new(TraceEngine.Ptrace, $"Auto: the kernel has no BTF ({Btf.VmlinuxPath}), which the eBPF engine needs");
        return new(TraceEngine.Bpf, "Auto: nothing in the request needs ptrace, and this process has CAP_BPF and CAP_PERFMON");
    }

    /// <summary>Launches with the chosen engine; under Auto, an eBPF engine that fails to load falls back to ptrace with a Verbose line.</summary>
    public static (ChannelReader<TraceEvent> Reader, SyscallEngineChoice Choice) Launch(SyscallEngine requested, string program, IReadOnlyList<string> arguments,
        SyscallTraceOptions options, ILogger? log = null, CancellationToken cancel = default, string? stdinPath = null, string? stdoutPath = null,
        string? stderrPath = null, SyscallSummaryBuilder? kernelSummary = null)
    {
        log ??= NullLogger.Instance;
        SyscallEngineChoice choice = Choose(requested, options);
        if (choice.Engine == TraceEngine.Bpf)
        {
            try
            {
                var reader = BpfSyscallTracer.Launch(program, arguments, options, log, cancel, stdinPath, stdoutPath, stderrPath, kernelSummary);
                log.LogInformation("Engine Bpf: {Reason}.", choice.Reason);
                return (reader, choice);
            }
            catch (LinuxTraceException ex) when (requested == SyscallEngine.Auto && ex is not ProcessNotFoundException)
            {
                choice = new(TraceEngine.Ptrace, $"Auto: the eBPF engine could not start ({ex.Message})");
            }
        }
        log.LogInformation("Engine Ptrace: {Reason}.", choice.Reason);
        return (SyscallTracer.Launch(program, arguments, options, log, cancel, stdinPath, stdoutPath, stderrPath), choice);
    }

    /// <summary>
    /// Attaches to <paramref name="pids"/>: one eBPF trace for all of them, or one ptrace trace each.
    /// A pid that cannot be traced is reported through <paramref name="onError"/> and the others go on.
    /// </summary>
    /// <param name="track">called with each trace as soon as it exists (before any later error is reported)</param>
    public static (List<(int Pid, ChannelReader<TraceEvent> Reader)> Traces, SyscallEngineChoice Choice) Attach(SyscallEngine requested,
        IReadOnlyList<int> pids, SyscallTraceOptions options, Action<LinuxTraceException, int> onError, ILogger? log = null,
        CancellationToken cancel = default, SyscallSummaryBuilder? kernelSummary = null, Action<ChannelReader<TraceEvent>>? track = null)
    {
        log ??= NullLogger.Instance;
        SyscallEngineChoice choice = Choose(requested, options);
        var traces = new List<(int, ChannelReader<TraceEvent>)>();
        if (choice.Engine == TraceEngine.Bpf)
        {
            var live = new List<int>();
            foreach (int pid in pids.Distinct())
            {
                if (pid > 0 && ProcFs.Exists(pid)) live.Add(pid);
                else onError(new ProcessNotFoundException(pid), pid);
            }
            while (live.Count > 0)
            {
                try
                {
                    var reader = BpfSyscallTracer.Attach(live, options, log, cancel, kernelSummary);
                    track?.Invoke(reader);
                    log.LogInformation("Engine Bpf: {Reason}.", choice.Reason);
                    traces.Add((live[0], reader));
                    return (traces, choice);
                }
                catch (ProcessNotFoundException ex) when (live.Remove(ex.ProcessId))
                {
                    onError(ex, ex.ProcessId);   // it exited meanwhile (or is a zombie): trace the others
                }
                catch (LinuxTraceException ex) when (requested == SyscallEngine.Auto && ex is not ProcessNotFoundException)
                {
                    choice = new(TraceEngine.Ptrace, $"Auto: the eBPF engine could not start ({ex.Message})");
                    break;
                }
            }
            if (choice.Engine == TraceEngine.Bpf) return (traces, choice);
        }
        log.LogInformation("Engine Ptrace: {Reason}.", choice.Reason);
        foreach (int pid in pids.Distinct())
        {
            ChannelReader<TraceEvent> reader;
            try { reader = SyscallTracer.Attach(pid, options, log, cancel); }
            catch (LinuxTraceException ex) { onError(ex, pid); continue; }
            track?.Invoke(reader);
            traces.Add((pid, reader));
        }
        return (traces, choice);
    }

    private static string? PtraceOnlyNeed(SyscallTraceOptions o) =>
        o.StackFrames > 0 ? "stack traces need the tracee stopped at each call, to read its stack then"
        : o.StringLimit > BpfSyscallObject.MaxCopy ? $"-StringLimit {o.StringLimit} is more than the {BpfSyscallObject.MaxCopy} bytes the eBPF engine copies"
        : !InInitialPidNamespace() ? "this process runs in a pid namespace of its own, whose ids the kernel program does not see"
        : null;

    private static bool InInitialPidNamespace() => Syscalls.LiveTracee.ReadLink("/proc/self/ns/pid") is null or "pid:[4026531836]";

    /// <summary>"CAP_BPF, CAP_PERFMON" (what is missing of them) from CapEff in /proc/self/status; CAP_SYS_ADMIN stands for both (bpf_capable, perfmon_capable).</summary>
    public static string? MissingCapabilities()
    {
        ulong eff;
        try
        {
            string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
            eff = ulong.Parse(line["CapEff:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or FormatException or InvalidOperationException) { return "CAP_BPF, CAP_PERFMON"; }
        bool Has(int cap) => (eff & (1UL << cap)) != 0;
        var missing = new List<string>();
        if (!Has(CapBpf) && !Has(CapSysAdmin)) missing.Add("CAP_BPF");
        if (!Has(CapPerfmon) && !Has(CapSysAdmin)) missing.Add("CAP_PERFMON");
        return missing.Count == 0 ? null : string.Join(", ", missing);
    }
}
