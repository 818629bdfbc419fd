using Microsoft.Win32.SafeHandles;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>A kernel file descriptor (perf event, BPF map/program/link, epoll, pidfd) that is closed exactly once.</summary>
public sealed class SafeFileDescriptor : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeFileDescriptor() : base(ownsHandle: true) { }

    public SafeFileDescriptor(int fd) : base(ownsHandle: true) => SetHandle(fd);

    /// <summary>The raw descriptor number (valid while this handle is alive).</summary>
    public int Fd => (int)handle;

    // fd 0 is a valid descriptor but never one we create (stdin is open), so "zero is invalid" is safe.
    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
