using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// The ClrMD worker process's side (pslinuxtrace-clrmd): the .NET runtime's debugging library (the DAC) is
/// native code that reads a target's runtime structures and can crash on what it reads (a live process that
/// ran on, a damaged core), so it never runs in the user's pwsh. Here it reads the target through the client
/// ('R' requests answered from the very address space the native unwinder uses: a capture's copied stacks, a
/// core's segments and files), and answers 'F' (a thread's managed frames) and 'M' (is this managed code).
/// </summary>
public static class ClrMdWorkerServer
{
    /// <summary>Serves one target until 'Q' or the end of input; the exit code is 0, or 2 when it could not open it.</summary>
    public static int Run(Stream input, Stream output)
    {
        // Buffered both ways: a frame is a dozen small fields, each a write(2) on a bare pipe.
        using var reader = new BinaryReader(new BufferedStream(input, 1 << 16));
        using var writer = new BinaryWriter(new BufferedStream(output, 1 << 16));
        if (reader.ReadByte() != ClrMdWire.Open) return 2;
        string name = reader.ReadString(), dac = reader.ReadString();
        int pid = reader.ReadInt32();
        string? sysRoot = reader.ReadNullableString();
        var modules = new List<ClrModule>();
        for (int n = reader.ReadInt32(); n > 0; n--) modules.Add(new ClrModule(reader.ReadUInt64(), reader.ReadString()));
        var registers = new Dictionary<int, X64Registers>();
        for (int n = reader.ReadInt32(); n > 0; n--) registers[reader.ReadInt32()] = reader.ReadRegisters();

        var memory = new ClientMemory(reader, writer);
        ClrMdFrameSource source;
        try
        {
            source = ClrMdFrameSource.Open(name, pid, memory, modules, registers, dac, sysRoot, NullLogger.Instance);
        }
        catch (Exception ex) when (ex is not IOException and not EndOfStreamException)
        {
            writer.Write(ClrMdWire.Failed);
            writer.Write($"{ex.GetType().Name}: {ex.Message}");
            writer.Flush();
            return 2;
        }
        using (source)
        {
            writer.Write(ClrMdWire.Opened);
            writer.Flush();
            while (true)
            {
                switch (reader.ReadByte())
                {
                    case ClrMdWire.Frames:
                        int tid = reader.ReadInt32();
                        ulong sp = reader.ReadUInt64();
                        var frames = source.Frames(tid, sp);
                        writer.Write(ClrMdWire.FramesReply);
                        writer.Write(frames.Count);
                        foreach (var f in frames) writer.Write(f);
                        break;
                    case ClrMdWire.IsManaged:
                        bool managed = source.IsManagedCode(reader.ReadUInt64());
                        writer.Write(ClrMdWire.IsManagedReply);
                        writer.Write(managed);
                        break;
                    default:
                        return 0;
                }
                writer.Flush();
            }
        }
    }

    /// <summary>The target's memory as the client reads it for us: one 'R' request per read (the data reader caches pages).</summary>
    private sealed class ClientMemory(BinaryReader reader, BinaryWriter writer) : IAddressSpace
    {
        public int Read(ulong address, Span<byte> buffer)
        {
            int want = Math.Min(buffer.Length, ClrMdWire.MaxRead);
            writer.Write(ClrMdWire.Read);
            writer.Write(address);
            writer.Write(want);
            writer.Flush();
            if (reader.ReadByte() != ClrMdWire.ReadReply) throw new IOException("The client did not answer a memory read.");
            int got = reader.ReadInt32();
            if (got < 0 || got > want) throw new IOException("The client answered a memory read with a bad length.");
            var bytes = reader.ReadBytes(got);
            if (bytes.Length != got) throw new EndOfStreamException();
            bytes.CopyTo(buffer);
            return got;
        }
    }
}
