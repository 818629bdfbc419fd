using System.Buffers.Binary;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>What a frame between the user's process and the tracer process carries.</summary>
internal enum FrameKind : byte
{
    /// <summary>Client to tracer, first and once: the job (JSON <see cref="TracerRequest"/>).</summary>
    Request = 1,
    /// <summary>Client to tracer: stop the job (end of input means the same).</summary>
    Cancel = 2,
    /// <summary>Client to tracer: the progress callback for the last Progress frame has returned.</summary>
    ProgressDone = 3,

    /// <summary>A log line: one byte of LogLevel, then UTF-8 text.</summary>
    Log = 10,
    /// <summary>
    /// Progress of a snapshot: two little-endian int64, done and total bytes. The job waits for ProgressDone,
    /// so a progress callback runs while the job waits, as it would in place.
    /// </summary>
    Progress = 11,
    /// <summary>One trace event, in <see cref="TraceEventCodec"/>'s binary form.</summary>
    Event = 12,
    /// <summary>The job's result object: one byte of <see cref="TracerJson"/> type tag, then JSON.</summary>
    Result = 13,
    /// <summary>The job failed: JSON <see cref="ErrorInfo"/>.</summary>
    Error = 14,
    /// <summary>The job is over and everything it held is released (tracees detached, launched programs reaped).</summary>
    Done = 15,
    /// <summary>One of a job's many output objects (a captured process), encoded as Result is.</summary>
    Item = 16,
    /// <summary>A job about many targets failed for one of them and goes on: JSON <see cref="ErrorInfo"/> with its Target.</summary>
    TargetError = 17,
}

/// <summary>
/// Frames on a pipe: a little-endian uint32 length of what follows, one byte of <see cref="FrameKind"/>,
/// then the payload.
/// </summary>
internal static class Frames
{
    /// <summary>Frames larger than this are refused: no output object comes near it.</summary>
    public const int MaxPayload = 64 << 20;

    /// <summary>The bytes of one frame.</summary>
    public static byte[] Encode(FrameKind kind, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[5 + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(payload.Length + 1));
        frame[4] = (byte)kind;
        payload.CopyTo(frame.AsSpan(5));
        return frame;
    }

    public static void Write(Stream stream, FrameKind kind, ReadOnlySpan<byte> payload)
    {
        stream.Write(Encode(kind, payload));
        stream.Flush();
    }

    /// <summary>Reads one frame; false at a clean end of the stream (or one cut inside a frame).</summary>
    public static bool TryRead(Stream stream, out FrameKind kind, out byte[] payload)
    {
        kind = 0;
        payload = [];
        Span<byte> header = stackalloc byte[5];
        if (!ReadAll(stream, header)) return false;
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        if (length == 0 || length - 1 > MaxPayload) throw new BadInputFormatException($"A frame from the tracer process has an impossible length ({length}).");
        kind = (FrameKind)header[4];
        payload = new byte[length - 1];
        return ReadAll(stream, payload);
    }

    private static bool ReadAll(Stream stream, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = stream.Read(buffer[done..]);
            if (n == 0) return false;
            done += n;
        }
        return true;
    }
}
