using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>Everything an ELF core holds besides the memory bytes: what the snapshotters collect and CoreWriter writes.</summary>
internal sealed class CoreImage
{
    public sealed class Thread
    {
        public int Tid;
        public UserRegsX64 Registers;
        public byte[]? FpRegs;
        public byte[]? XState;
        public int CurrentSignal;
    }

    public sealed class Segment
    {
        public ulong Start, End;
        public uint Flags; // PF_R/PF_W/PF_X
        /// <summary>Bytes of the segment written to the file (0: not dumped, like gcore's text segments; else the whole segment).</summary>
        public ulong DumpSize;
        public string? Path;
        public ulong FileOffset;
        public ulong Inode;
        /// <summary>A private mapping (copy-on-write), as opposed to a shared one.</summary>
        public bool Private = true;
        /// <summary>Where the segment's bytes are in the core file; -1: CoreWriter.Write lays them out in order.</summary>
        public long CoreOffset = -1;
    }

    public int Pid, ParentPid, ProcessGroup, Session;
    public uint Uid, Gid;
    public char State = 'R';
    public int Nice;
    public ulong Flags;
    public string Comm = "";
    public string Arguments = "";
    public List<Thread> Threads { get; } = new();
    public List<Segment> Segments { get; } = new();
    public byte[] Auxv = Array.Empty<byte>();
    public byte[]? SigInfo;
    public List<(string Name, uint Type, byte[] Descriptor)> ExtraNotes { get; } = new();
}
