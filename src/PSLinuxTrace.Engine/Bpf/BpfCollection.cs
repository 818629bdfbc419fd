using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using BpfCalls = PSLinuxTrace.Engine.Interop.Bpf;

namespace PSLinuxTrace.Engine.Bpf;

/// <summary>
/// Every kernel object made from one BPF ELF object: its maps, its programs (map references
/// relocated to the new map fds, verified by the kernel), the ring buffer readers opened on its
/// maps, and the attachments of its programs. Loading does not attach, so the caller can fill the
/// maps first; <see cref="Attach"/> attaches each program where its section says. Dispose detaches
/// and closes everything in reverse order, so nothing the collection made stays in the kernel.
/// </summary>
public sealed class BpfCollection : IDisposable
{
    private readonly List<IDisposable> _owned = [];   // in creation order; disposed in reverse
    private readonly List<(int Order, IDisposable Link)> _links = [];
    private readonly Dictionary<string, BpfMap> _maps = new(StringComparer.Ordinal);
    private readonly List<(BpfProgramSpec Spec, BpfProgram Program)> _programs = [];
    private readonly ILogger _log;
    private bool _attached, _disposed;

    /// <summary>The resource (or file) name of the object, for messages.</summary>
    public string Name { get; }

    private BpfCollection(string name, ILogger log) { Name = name; _log = log; }

    /// <summary>
    /// Creates the maps of the embedded object <paramref name="resourceName"/> and loads its programs.
    /// <paramref name="maxEntries"/> overrides a map's max_entries (a ring buffer's size, a per-CPU scratch's CPU count).
    /// Throws typed engine exceptions: PermissionDenied naming CAP_BPF, BadInputFormat with the verifier log, ...
    /// </summary>
    public static BpfCollection Load(string resourceName, IReadOnlyDictionary<string, uint>? maxEntries, ILogger log) =>
        Load(BpfObject.Parse(BpfObject.ReadEmbedded(resourceName), resourceName), resourceName, maxEntries, log);

    public static BpfCollection Load(BpfObject obj, string name, IReadOnlyDictionary<string, uint>? maxEntries, ILogger log)
    {
        var c = new BpfCollection(name, log);
        try
        {
            foreach (BpfMapSpec spec in obj.Maps)
            {
                BpfMapSpec s = maxEntries is not null && maxEntries.TryGetValue(spec.Name, out uint n) ? spec with { MaxEntries = n } : spec;
                BpfMap m = BpfMap.Create(s);
                c._owned.Add(m);
                c._maps[s.Name] = m;
                log.LogDebug("Created BPF map {Name} (type {Type}, {Entries} entries of {Size} bytes).", s.Name, s.Type, s.MaxEntries, s.ValueSize);
            }
            c.LoadPrograms(obj, name);
            return c;
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads every program, all at once: the kernel verifies each BPF_PROG_LOAD on the calling thread, and
    /// Watch-Exec's two argv-copying entry programs take ~230 ms each to verify here, most of its start-up.
    /// On failure the programs that did load are closed and the first failure (in the object's order) is thrown.
    /// </summary>
    private void LoadPrograms(BpfObject obj, string name)
    {
        var specs = obj.Programs.ToArray();
        var work = specs.Select(prog => (
            Type: prog.RawTracepoint is not null ? BpfCalls.BPF_PROG_TYPE_RAW_TRACEPOINT
                : prog.Tracepoint is not null ? BpfCalls.BPF_PROG_TYPE_TRACEPOINT
                : throw new BadInputFormatException($"{name}: program {prog.Name} is in section {prog.Section}, not tracepoint/ or raw_tracepoint/."),
            Insns: Relocate(prog))).ToArray();
        var loaded = new BpfProgram?[specs.Length];
        var failed = new Exception?[specs.Length];
        Parallel.For(0, specs.Length, i =>
        {
            try { loaded[i] = BpfProgram.Load(work[i].Type, work[i].Insns, obj.License, "pslt_" + specs[i].Name, specs[i].Functions); }
            catch (Exception ex) { failed[i] = ex; }
        });
        for (int i = 0; i < specs.Length; i++)
        {
            if (loaded[i] is not { } p) continue;
            _owned.Add(p);
            _programs.Add((specs[i], p));
        }
        if (failed.FirstOrDefault(e => e is not null) is { } first)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
    }

    /// <summary>The program's instructions with each map reference pointed at the map's fd.</summary>
    private byte[] Relocate(BpfProgramSpec prog)
    {
        byte[] insns = (byte[])prog.Instructions.Clone();
        foreach (BpfMapRelocation r in prog.MapRelocations)
        {
            if (!_maps.TryGetValue(r.MapName, out BpfMap? m)) throw new BadInputFormatException($"{Name}: {prog.Name} refers to unknown map {r.MapName}.");
            int at = r.InstructionIndex * BpfCalls.InsnSize;
            insns[at + 1] = (byte)((insns[at + 1] & 0x0f) | (BpfCalls.BPF_PSEUDO_MAP_FD << 4));   // src_reg = BPF_PSEUDO_MAP_FD
            BinaryPrimitives.WriteInt32LittleEndian(insns.AsSpan(at + 4), m.Fd.Fd);                 // imm = map fd
        }
        return insns;
    }

    /// <summary>The map named <paramref name="name"/> in the object; BadInputFormat when the object has none.</summary>
    public BpfMap Map(string name) =>
        _maps.GetValueOrDefault(name) ?? throw new BadInputFormatException($"{Name} has no '{name}' map.");

    /// <summary>The map, checked to be of <paramref name="type"/> with the given key and value sizes (the C and C# layouts must agree).</summary>
    public BpfMap Map(string name, uint type, uint keySize, uint valueSize)
    {
        BpfMap m = Map(name);
        if (m.Spec.Type != type || m.Spec.KeySize != keySize || m.Spec.ValueSize != valueSize)
            throw new BadInputFormatException($"{Name}: map {name} is type {m.Spec.Type} with {m.Spec.KeySize}-byte keys and {m.Spec.ValueSize}-byte values; " +
                $"the engine expects type {type}, {keySize} and {valueSize}.");
        return m;
    }

    /// <summary>A reader of the ring buffer map <paramref name="name"/>, closed with the collection.</summary>
    public RingBufferReader OpenRingBuffer(string name)
    {
        BpfMap m = Map(name);
        if (m.Spec.Type != BpfCalls.BPF_MAP_TYPE_RINGBUF) throw new BadInputFormatException($"Map {name} of {Name} is not a ring buffer.");
        var ring = new RingBufferReader(m.Fd, m.Spec.MaxEntries);
        _owned.Add(ring);
        return ring;
    }

    /// <summary>
    /// Attaches every program to the tracepoint its section names: by <paramref name="order"/> (lowest
    /// first; exit programs before entry programs, so no entry is recorded whose exit is not), else in
    /// the object's order.
    /// </summary>
    public void Attach(Func<BpfProgramSpec, int>? order = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_attached) return;
        _attached = true;
        int index = 0;
        foreach (var (spec, program) in order is null ? _programs : _programs.OrderBy(p => order(p.Spec)).ToList())
        {
            int key = order?.Invoke(spec) ?? index;
            index++;
            IDisposable link = spec.RawTracepoint is { } raw
                ? RawTracepointAttachment.Attach(program, raw)
                : TracepointAttachment.Attach(program, spec.Tracepoint!);
            _links.Add((key, link));
            _log.LogDebug("Loaded {Program} ({Count} instructions) and attached it to {Tracepoint}.", spec.Name, spec.Instructions.Length / 8, spec.RawTracepoint ?? spec.Tracepoint);
        }
    }

    /// <summary>The kernel ids of the loaded programs (for `bpftool prog show id N`).</summary>
    public IReadOnlyList<uint> ProgramIds => _programs.Select(p => p.Program.Id).ToArray();

    /// <summary>
    /// Detaches every program: no new record or map change comes after this returns, so what the maps
    /// and ring buffer hold is final (read it, then Dispose).
    /// </summary>
    /// <remarks>
    /// The reverse of the attach order (entry programs go before exit programs), and the programs of one order
    /// at once: closing a tracepoint's perf event waits out an RCU grace period (~70 ms each on these VMs),
    /// which was most of Watch-Exec's stop.
    /// </remarks>
    public void Detach()
    {
        foreach (var group in _links.GroupBy(l => l.Order).OrderByDescending(g => g.Key))
        {
            var links = group.Select(l => l.Link).ToArray();
            if (links.Length == 1) links[0].Dispose();
            else Parallel.ForEach(links, l => l.Dispose());
        }
        _links.Clear();
    }

    /// <summary>Detaches, then closes ring readers, programs and maps.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Detach();
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }
}
