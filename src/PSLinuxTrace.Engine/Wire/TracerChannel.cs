using System.Diagnostics;
using System.Net.Sockets;
using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Wire;

/// <summary>
/// The connection between the user's process and its tracer process: a Unix stream socket with an
/// abstract name (no file to clean up, gone with the two processes), not the tracer's standard
/// streams. Those stay the user's own (pwsh's console, or its redirect), so that a program the tracer
/// launches writes where a program pwsh starts writes, reads the keyboard when pwsh lets it, and can
/// never write into the frames. Each side checks who is at the other end (SO_PEERCRED): the client
/// accepts only the process it started, the tracer connects only to its parent.
/// </summary>
internal static class TracerChannel
{
    /// <summary>The tracer program's first argument; the second is the socket's name.</summary>
    public const string ConnectOption = "--connect";

    /// <summary>How long the tracer has to connect after it was started.</summary>
    private static readonly TimeSpan ConnectWait = TimeSpan.FromSeconds(30);

    private const int SolSocket = 1, SoPeerCred = 17;

    /// <summary>A listening socket with a fresh abstract name (its name in <paramref name="name"/>).</summary>
    public static Socket Listen(out string name)
    {
        name = $"pslinuxtrace/{Environment.ProcessId}/{Guid.NewGuid():N}";
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint("\0" + name));
            listener.Listen(4);
            return listener;
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The tracer's connection: waits until <paramref name="tracer"/> connects (any other process that
    /// finds the name is turned away), or throws once it has exited or has not connected in time.
    /// </summary>
    public static Socket Accept(Socket listener, Process tracer) => Accept(listener, tracer, ConnectWait);

    internal static Socket Accept(Socket listener, Process tracer, TimeSpan wait)
    {
        var deadline = Stopwatch.StartNew();
        var exited = tracer.WaitForExitAsync();
        while (true)
        {
            var accept = listener.AcceptAsync();
            var left = wait - deadline.Elapsed;
            int which = left <= TimeSpan.Zero ? -1 : Task.WaitAny([accept, exited], left);
            if (which == 0)
            {
                var socket = accept.Result;
                if (PeerPid(socket) == tracer.Id) return socket;
                socket.Dispose();
                continue;
            }
            listener.Dispose();   // ends the pending accept
            if (which == 1)
                throw new LinuxTraceException($"The tracer program '{tracer.StartInfo.FileName}' ended before it connected ({ExitDescription(tracer.ExitCode)}).");
            try { tracer.Kill(); } catch (InvalidOperationException) { }
            throw new LinuxTraceException($"The tracer program '{tracer.StartInfo.FileName}' did not connect within {wait.TotalSeconds:0.#} s.");
        }
    }

    /// <summary>The tracer's side: connects to <paramref name="name"/>, which its parent must hold.</summary>
    public static Socket Connect(string name)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint("\0" + name));
            int parent = ProcFs.ReadStatus(Environment.ProcessId).ParentPid;
            int peer = PeerPid(socket);
            if (peer != parent)
                throw new LinuxTraceException($"The socket '{name}' belongs to process {peer}, not to this tracer's parent {parent}.");
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The pid of the process at the other end (for a listener's connection, the one that called listen).</summary>
    private static int PeerPid(Socket socket)
    {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        Span<byte> cred = stackalloc byte[12];
        int length = socket.GetRawSocketOption(SolSocket, SoPeerCred, cred);
        return length >= 4 ? BitConverter.ToInt32(cred) : -1;
    }

    /// <summary>An exit code as Process reports it (128 + the signal number for a death by signal).</summary>
    public static string ExitDescription(int code) => code > 128 ? $"killed by {Signals.Name(code - 128)}" : $"exit code {code}";
}
