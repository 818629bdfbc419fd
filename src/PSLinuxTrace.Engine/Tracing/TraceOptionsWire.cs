using PSLinuxTrace.Engine.Syscalls;
using PSLinuxTrace.Engine.Wire;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>A syscall trace's options as they cross to the tracer process and back.</summary>
internal static class TraceOptionsWire
{
    public static TraceOptionsData ToWire(this SyscallTraceOptions o) => new()
    {
        Syscalls = o.Filter is { IsAll: false } f ? f.Numbers.ToArray() : null,
        FollowForks = o.FollowForks,
        FailedOnly = o.FailedOnly,
        Timeout = o.Timeout,
        StringLimit = o.StringLimit,
        DecodeArguments = o.DecodeArguments,
        PinToTraceeCpu = o.PinToTraceeCpu,
        UseSeccomp = o.UseSeccomp,
        WorkingDirectory = o.WorkingDirectory,
        StackFrames = o.StackFrames,
        ChannelCapacity = o.ChannelCapacity,
    };

    public static SyscallTraceOptions ToOptions(this TraceOptionsData d)
    {
        var arch = SyscallArchitectureX64.Instance;
        return new SyscallTraceOptions
        {
            Filter = d.Syscalls is null ? null : SyscallFilter.FromNumbers(arch, d.Syscalls),
            FollowForks = d.FollowForks,
            FailedOnly = d.FailedOnly,
            Timeout = d.Timeout,
            StringLimit = d.StringLimit,
            DecodeArguments = d.DecodeArguments,
            PinToTraceeCpu = d.PinToTraceeCpu,
            UseSeccomp = d.UseSeccomp,
            WorkingDirectory = d.WorkingDirectory,
            StackFrames = d.StackFrames,
            ChannelCapacity = d.ChannelCapacity,
            Architecture = arch,
        };
    }
}
