using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// Managed frames from the ClrMD worker process (see <see cref="ClrMdWorkerServer"/>): the DAC runs there, so a
/// crash or a hang in it costs the managed frames of one stack, never the user's pwsh. The worker reads the
/// target through this object (<see cref="Pump"/> answers its reads from <c>memory</c>). Once the worker is
/// gone every call answers "nothing managed", and the one warning says why.
/// </summary>
internal sealed class ClrMdWorkerClient : IManagedFrameSource
{
    /// <summary>The most one request may take before the worker is killed (the DAC looping on a damaged target).</summary>
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);
    private readonly Process _process;
    private readonly BinaryReader _reader;
    private readonly BinaryWriter _writer;
    private readonly IAddressSpace _memory;
    private readonly string _name;
    private readonly Action<string> _warn;
    private string? _dead;

    private ClrMdWorkerClient(Process process, IAddressSpace memory, string name, Action<string> warn)
    {
        (_process, _memory, _name, _warn) = (process, memory, name, warn);
        _reader = new BinaryReader(new BufferedStream(process.StandardOutput.BaseStream, 1 << 16));
        _writer = new BinaryWriter(new BufferedStream(process.StandardInput.BaseStream, 1 << 16));
    }

    /// <summary>Starts the worker and opens the target's runtime there; throws (with the worker's reason) when it cannot.</summary>
    public static ClrMdWorkerClient Open(string name, int pid, IAddressSpace memory, IReadOnlyList<ClrModule> modules,
        IReadOnlyDictionary<int, X64Registers> registers, string dac, string? sysRoot, Action<string> warn, ILogger log)
    {
        var (host, worker) = WorkerCommand();
        var psi = new ProcessStartInfo(host) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (worker is not null) psi.ArgumentList.Add(worker);
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"{host} did not start.");
        // What the runtime or the DAC prints is not ours to show; read it so that it never blocks the worker.
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) log.LogDebug("pslinuxtrace-clrmd: {Line}", line); };
        process.BeginErrorReadLine();
        var client = new ClrMdWorkerClient(process, memory, name, warn);
        try
        {
            var w = client._writer;
            w.Write(ClrMdWire.Open);
            w.Write(name);
            w.Write(dac);
            w.Write(pid);
            w.WriteNullable(sysRoot);
            w.Write(modules.Count);
            foreach (var m in modules) { w.Write(m.ImageBase); w.Write(m.Path); }
            w.Write(registers.Count);
            foreach (var (tid, r) in registers) { w.Write(tid); w.Write(r); }
            w.Flush();
            byte reply = client.Pump(ClrMdWire.Opened, ClrMdWire.Failed);
            if (reply == ClrMdWire.Failed) throw new InvalidOperationException(client._reader.ReadString());
            return client;
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            string why = client.Death();
            client.Dispose();
            throw new InvalidOperationException(why, ex);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>dotnet and pslinuxtrace-clrmd.dll next to this assembly ($PSLINUXTRACE_CLRMD_WORKER overrides the worker).</summary>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("SingleFile", "IL3000",
        Justification = "Only the user's process starts the worker, and there the engine is a file.")]
    private static (string Host, string? Worker) WorkerCommand()
    {
        string worker = Environment.GetEnvironmentVariable("PSLINUXTRACE_CLRMD_WORKER") is { Length: > 0 } w ? w
            : Path.Combine(Path.GetDirectoryName(typeof(ClrMdWorkerClient).Assembly.Location) ?? AppContext.BaseDirectory, "pslinuxtrace-clrmd.dll");
        if (!File.Exists(worker)) throw new FileNotFoundException($"The ClrMD worker {worker} is missing from the module.", worker);
        // The dotnet host of the runtime this process runs on: <root>/shared/Microsoft.NETCore.App/<version>/ -> <root>/dotnet.
        string host = Path.GetFullPath(Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        return (File.Exists(host) ? host : "dotnet", worker);
    }

    public IReadOnlyList<ManagedFrame> Frames(int tid, ulong stackPointer)
    {
        if (_dead is not null) return [];
        try
        {
            _writer.Write(ClrMdWire.Frames);
            _writer.Write(tid);
            _writer.Write(stackPointer);
            _writer.Flush();
            Pump(ClrMdWire.FramesReply);
            var frames = new ManagedFrame[_reader.ReadInt32()];
            for (int i = 0; i < frames.Length; i++) frames[i] = _reader.ReadFrame();
            return frames;
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            _warn(Death());
            return [];
        }
    }

    public bool IsManagedCode(ulong ip)
    {
        if (_dead is not null) return false;
        try
        {
            _writer.Write(ClrMdWire.IsManaged);
            _writer.Write(ip);
            _writer.Flush();
            Pump(ClrMdWire.IsManagedReply);
            return _reader.ReadBoolean();
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            _warn(Death());
            return false;
        }
    }

    /// <summary>Answers the worker's memory reads until it sends one of <paramref name="expected"/>, which it returns.</summary>
    private byte Pump(params byte[] expected)
    {
        using var deadline = new CancellationTokenSource(RequestTimeout);
        using var _ = deadline.Token.Register(() => { _dead ??= $"did not answer within {RequestTimeout.TotalSeconds:F0} s"; Kill(); });
        var buffer = new byte[ClrMdWire.MaxRead];
        while (true)
        {
            byte kind = _reader.ReadByte();
            if (Array.IndexOf(expected, kind) >= 0) return kind;
            if (kind != ClrMdWire.Read) throw new IOException($"The ClrMD worker sent an unknown message ({kind}).");
            ulong address = _reader.ReadUInt64();
            int want = Math.Clamp(_reader.ReadInt32(), 0, buffer.Length);
            int got;
            try { got = _memory.Read(address, buffer.AsSpan(0, want)); }
            catch (LinuxTraceException) { got = 0; } // the live process is gone: that memory is just unreadable
            _writer.Write(ClrMdWire.ReadReply);
            _writer.Write(got);
            _writer.Write(buffer, 0, got);
            _writer.Flush();
        }
    }

    /// <summary>Why the worker is gone, as the one warning says it (and no more calls go to it).</summary>
    private string Death()
    {
        if (_dead is { } known && known.StartsWith("The ", StringComparison.Ordinal)) return known;
        string how = _dead ?? (_process.WaitForExit(2000)
            ? _process.ExitCode > 128 ? $"was killed by signal {_process.ExitCode - 128} ({Signals.Name(_process.ExitCode - 128)})" : $"exited with code {_process.ExitCode}"
            : "stopped answering");
        _dead = $"The .NET runtime reader (pslinuxtrace-clrmd) {how} while it read {_name}; the managed frames from there on are not shown.";
        Kill();
        return _dead;
    }

    private void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(); }
        catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        try
        {
            if (_dead is null)
            {
                _writer.Write(ClrMdWire.Quit);
                _writer.Flush();
            }
            _process.StandardInput.Close();
        }
        catch (IOException) { }
        if (!_process.WaitForExit(2000)) Kill();
        _process.Dispose();
    }
}
