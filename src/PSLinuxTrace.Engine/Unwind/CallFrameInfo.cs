using PSLinuxTrace.Engine.Dwarf;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Unwind;

/// <summary>How to recover one register in the caller's frame (a DWARF CFI register rule).</summary>
internal enum RuleKind : byte { Unspecified, Undefined, SameValue, Offset, ValOffset, Register, Expression, ValExpression }

internal struct RegisterRule
{
    public RuleKind Kind;
    public long Offset;
    public int Register;
    public byte[]? Expression;
}

/// <summary>One row of the CFI table: how to compute the CFA and each register at a pc.</summary>
internal sealed class CfiRow
{
    public const int RegisterCount = 17; // DWARF x86_64: 0-15 general purpose, 16 return address (rip)
    public int CfaRegister = -1;
    public long CfaOffset;
    public byte[]? CfaExpression;
    public RegisterRule[] Rules = new RegisterRule[RegisterCount];
    public int ReturnAddressRegister = 16;
    public bool IsSignalFrame;

    public CfiRow Clone() => new()
    {
        CfaRegister = CfaRegister, CfaOffset = CfaOffset, CfaExpression = CfaExpression,
        Rules = (RegisterRule[])Rules.Clone(), ReturnAddressRegister = ReturnAddressRegister, IsSignalFrame = IsSignalFrame,
    };
}

/// <summary>
/// The call frame information of one ELF file (.eh_frame, and .debug_frame when present): an index
/// of FDEs sorted by address, built once, and the CFA program interpreter that yields the row for a
/// pc. A file can have both: code built with -fno-asynchronous-unwind-tables -g has its FDEs in
/// .debug_frame while the C runtime's stay in .eh_frame, so both are searched, .eh_frame first.
/// Addresses are the file's own (before the load bias).
/// </summary>
public sealed partial class CallFrameInfo
{
    // The bytes: a section of an ELF file, or .eh_frame copied out of an image in memory.
    private readonly ElfFile? _elf;
    private readonly byte[]? _bytes;
    private readonly string _name;
    private readonly ulong _sectionOffset, _sectionSize, _sectionAddress;
    private readonly bool _isDebugFrame;
    private readonly Fde[] _fdes;
    private readonly Dictionary<int, Cie> _cies = new();
    // Set on a combined instance: the sections searched in order (its own _fdes is then empty).
    private readonly CallFrameInfo[]? _parts;

    private readonly record struct Fde(ulong Begin, ulong End, int CieOffset, int InstructionsStart, int InstructionsEnd);

    private sealed record Cie(ulong CodeAlign, long DataAlign, int ReturnAddressRegister, byte FdeEncoding, bool HasAugmentationData,
        bool IsSignalFrame, int InstructionsStart, int InstructionsEnd);

    public int Count => _parts?.Sum(p => p.Count) ?? _fdes.Length;
    public string Source => _parts is null ? (_isDebugFrame ? ".debug_frame" : ".eh_frame") : string.Join("+", _parts.Select(p => p.Source));

    private CallFrameInfo(ElfFile elf, ElfSection section, bool isDebugFrame)
    {
        _elf = elf;
        _name = elf.Name;
        _sectionOffset = section.Offset;
        _sectionSize = section.Size;
        _sectionAddress = isDebugFrame ? 0 : section.Address;
        _isDebugFrame = isDebugFrame;
        _fdes = Index();
    }

    /// <summary>
    /// CFI bytes not read in place: an .eh_frame read from memory (<paramref name="data"/> holds it from its
    /// link-time <paramref name="address"/> on), or an inflated compressed .debug_frame (addresses absolute).
    /// </summary>
    private CallFrameInfo(string name, byte[] data, ulong address, bool isDebugFrame = false)
    {
        _name = name;
        _bytes = data;
        _sectionSize = (ulong)data.Length;
        _sectionAddress = address;
        _isDebugFrame = isDebugFrame;
        _fdes = Index();
    }

    private CallFrameInfo(CallFrameInfo[] parts)
    {
        _name = parts[0]._name;
        _fdes = Array.Empty<Fde>();
        _parts = parts;
    }

    /// <summary>
    /// The CFI of <paramref name="elf"/> (.eh_frame and .debug_frame), or null when it has none. A compressed
    /// .debug_frame (SHF_COMPRESSED zlib or zstd, as objcopy --compress-debug-sections and ld -gz leave it in
    /// debug files; or a legacy .zdebug_frame) is inflated once, here.
    /// </summary>
    public static CallFrameInfo? Load(ElfFile elf)
    {
        CallFrameInfo? fromEh = null, fromDebug = null;
        var eh = elf.FindSection(".eh_frame");
        if (eh is not null && eh.Type != ElfSection.SHT_NOBITS && eh.Size > 0) fromEh = new CallFrameInfo(elf, eh, false);
        var debug = elf.FindSection(".debug_frame") ?? elf.FindSection(".zdebug_frame");
        if (debug is not null && debug.Type != ElfSection.SHT_NOBITS && debug.Size > 0)
            fromDebug = ElfSectionDecompressor.IsCompressed(debug)
                ? new CallFrameInfo(elf.Name, ElfSectionDecompressor.GetUncompressedBytes(elf, debug), 0, isDebugFrame: true)
                : new CallFrameInfo(elf, debug, true);
        return Combine(fromEh, fromDebug);
    }

    /// <summary>CFI from bytes held in memory (an .eh_frame linked at <paramref name="address"/>, or a .debug_frame): the fuzzing entry.</summary>
    internal static CallFrameInfo FromBytes(byte[] data, ulong address, bool isDebugFrame, string name = "<bytes>") =>
        new(name, data, isDebugFrame ? 0 : address, isDebugFrame);

    /// <summary>Where each FDE begins, in address order (for tests and fuzzing, which look rows up there).</summary>
    internal IEnumerable<ulong> FdeStarts() => _parts?.SelectMany(p => p.FdeStarts()) ?? _fdes.Select(f => f.Begin);

    /// <summary>CFI searched in the given order (e.g. a file's own, then its separate debug file's); null when all are null.</summary>
    public static CallFrameInfo? Combine(params CallFrameInfo?[] parts)
    {
        var list = parts.Where(p => p is not null).SelectMany(p => p!._parts ?? new[] { p }).Distinct().ToArray();
        return list.Length switch { 0 => null, 1 => list[0], _ => new CallFrameInfo(list) };
    }

    private ReadOnlySpan<byte> Data => _bytes is not null ? _bytes : _elf!.GetBytes(_sectionOffset, _sectionSize);

    private Fde[] Index()
    {
        var list = new List<Fde>();
        var data = Data;
        int pos = 0;
        while (pos + 4 <= data.Length)
        {
            var c = new DwarfCursor(data, _sectionAddress, pos);
            ulong length = c.U32();
            if (length == 0)
            {
                if (_isDebugFrame) { pos = c.Position; continue; }
                break; // .eh_frame terminator
            }
            bool is64 = length == 0xffffffff;
            if (is64) length = c.U64();
            int idPos = c.Position;
            if (length > (ulong)(data.Length - idPos)) throw new BadInputFormatException($"{_name}: {Source} entry at 0x{pos:x} runs past the section.");
            int end = idPos + (int)length;
            ulong id = is64 ? c.U64() : c.U32();
            bool isCie = _isDebugFrame ? id == (is64 ? ulong.MaxValue : 0xffffffff) : id == 0;
            if (!isCie)
            {
                int ciePos = _isDebugFrame ? (int)Math.Min(id, int.MaxValue) : idPos - (int)Math.Min(id, int.MaxValue);
                if (ciePos < 0 || ciePos >= data.Length) throw new BadInputFormatException($"{_name}: FDE at 0x{pos:x} points at a CIE outside {Source}.");
                var cie = GetCie(ciePos);
                ulong begin = _isDebugFrame ? c.U64() : c.Encoded(cie.FdeEncoding);
                ulong range = _isDebugFrame ? c.U64() : c.Encoded((byte)(cie.FdeEncoding & 0x0f));
                if (cie.HasAugmentationData)
                {
                    ulong augLen = c.Uleb();
                    // c.Position past end made the room negative and the instructions start before the section (found by fuzzing).
                    if (c.Position > end || augLen > (ulong)(end - c.Position)) throw new BadInputFormatException($"{_name}: FDE augmentation runs past its entry.");
                    c.Position += (int)augLen;
                }
                if (begin != 0 && range != 0 && c.Position <= end)
                    list.Add(new Fde(begin, unchecked(begin + range), ciePos, c.Position, end));
            }
            pos = end;
        }
        list.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        return list.ToArray();
    }

    private Cie GetCie(int pos)
    {
        if (_cies.TryGetValue(pos, out var cached)) return cached;
        var data = Data;
        var c = new DwarfCursor(data, _sectionAddress, pos);
        ulong length = c.U32();
        bool is64 = length == 0xffffffff;
        if (is64) length = c.U64();
        int idPos = c.Position;
        if (length == 0 || length > (ulong)(data.Length - idPos)) throw new BadInputFormatException($"{_name}: CIE at 0x{pos:x} has a bad length.");
        int end = idPos + (int)length;
        _ = is64 ? c.U64() : c.U32();
        byte version = c.U8();
        string aug = c.CString();
        if (aug.Contains("eh", StringComparison.Ordinal)) c.U64();
        if (version >= 4) { c.U8(); c.U8(); } // address_size, segment_size (.debug_frame v4)
        ulong codeAlign = c.Uleb();
        long dataAlign = c.Sleb();
        int ra = version == 1 ? c.U8() : (int)Math.Min(c.Uleb(), int.MaxValue);
        byte fdeEnc = DwarfCursor.PeAbsPtr;
        bool signal = false, hasAug = false;
        if (aug.StartsWith('z'))
        {
            hasAug = true;
            ulong augLen = c.Uleb();
            // A CIE whose header already ran past its end made this negative, and the CIE's instructions start before the section (found by fuzzing).
            if (c.Position > end) throw new BadInputFormatException($"{_name}: CIE at 0x{pos:x} is shorter than its own header.");
            int augEnd = c.Position + (int)Math.Min(augLen, (ulong)(end - c.Position));
            foreach (char ch in aug.AsSpan(1))
            {
                switch (ch)
                {
                    case 'R': fdeEnc = c.U8(); break;
                    case 'L': c.U8(); break;
                    case 'P': { byte enc = c.U8(); c.Encoded((byte)(enc & 0x7f)); break; }
                    case 'S': signal = true; break;
                    default: break; // unknown letters: the length lets us skip them
                }
            }
            c.Position = augEnd;
        }
        var cie = new Cie(codeAlign, dataAlign, ra, fdeEnc, hasAug, signal, c.Position, end);
        _cies[pos] = cie;
        return cie;
    }

    /// <summary>True when some FDE covers <paramref name="pc"/> (a file address).</summary>
    public bool Covers(ulong pc) => _parts?.Any(p => p.Covers(pc)) ?? FindFde(pc) >= 0;

    private int FindFde(ulong pc)
    {
        int lo = 0, hi = _fdes.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_fdes[mid].Begin <= pc) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        if (found < 0) return -1;
        // Nested or overlapping FDEs are not expected; check a few preceding ones anyway.
        for (int k = found; k >= 0 && k > found - 4; k--)
            if (pc >= _fdes[k].Begin && pc < _fdes[k].End) return k;
        return -1;
    }

    /// <summary>The CFI row in effect at <paramref name="pc"/> (a file address), or null when no FDE covers it.</summary>
    internal CfiRow? FindRow(ulong pc)
    {
        if (_parts is not null)
        {
            foreach (var part in _parts)
                if (part.FindRow(pc) is { } found) return found;
            return null;
        }
        int i = FindFde(pc);
        if (i < 0) return null;
        var fde = _fdes[i];
        var cie = GetCie(fde.CieOffset);
        var row = new CfiRow { ReturnAddressRegister = cie.ReturnAddressRegister, IsSignalFrame = cie.IsSignalFrame };
        var data = Data;
        Execute(data, cie.InstructionsStart, cie.InstructionsEnd, cie, row, null, ulong.MaxValue, fde.Begin);
        var initial = row.Clone();
        Execute(data, fde.InstructionsStart, fde.InstructionsEnd, cie, row, initial, pc, fde.Begin);
        return row;
    }

    private void Execute(ReadOnlySpan<byte> data, int start, int end, Cie cie, CfiRow row, CfiRow? initial, ulong targetPc, ulong loc)
    {
        var c = new DwarfCursor(data[..end], _sectionAddress, start);
        var saved = new Stack<CfiRow>();
        int steps = 0;
        while (!c.AtEnd)
        {
            if (++steps > 100_000) throw new BadInputFormatException($"{_name}: CFI program does not end.");
            byte op = c.U8();
            byte high = (byte)(op & 0xc0), low = (byte)(op & 0x3f);
            if (high == 0x40) // DW_CFA_advance_loc
            {
                loc = unchecked(loc + low * cie.CodeAlign);
                if (loc > targetPc) return;
                continue;
            }
            if (high == 0x80) { SetRule(row, low, RuleKind.Offset, (long)c.Uleb() * cie.DataAlign); continue; } // DW_CFA_offset
            if (high == 0xc0) { Restore(row, initial, low); continue; }                                          // DW_CFA_restore
            switch (op)
            {
                case 0x00: break; // nop
                case 0x01: loc = _isDebugFrame ? c.U64() : c.Encoded(cie.FdeEncoding); if (loc > targetPc) return; break;
                case 0x02: loc = unchecked(loc + c.U8() * cie.CodeAlign); if (loc > targetPc) return; break;
                case 0x03: loc = unchecked(loc + c.U16() * cie.CodeAlign); if (loc > targetPc) return; break;
                case 0x04: loc = unchecked(loc + c.U32() * cie.CodeAlign); if (loc > targetPc) return; break;
                case 0x05: { ulong r = c.Uleb(); SetRule(row, r, RuleKind.Offset, (long)c.Uleb() * cie.DataAlign); break; }
                case 0x06: Restore(row, initial, c.Uleb()); break;
                case 0x07: SetRule(row, c.Uleb(), RuleKind.Undefined, 0); break;
                case 0x08: SetRule(row, c.Uleb(), RuleKind.SameValue, 0); break;
                case 0x09:
                {
                    ulong r = c.Uleb(), r2 = c.Uleb();
                    if (r < CfiRow.RegisterCount) row.Rules[r] = new RegisterRule { Kind = RuleKind.Register, Register = (int)Math.Min(r2, int.MaxValue) };
                    break;
                }
                case 0x0a: saved.Push(row.Clone()); break;
                case 0x0b:
                    if (saved.Count > 0)
                    {
                        var s = saved.Pop();
                        row.Rules = s.Rules;
                        row.CfaRegister = s.CfaRegister;
                        row.CfaOffset = s.CfaOffset;
                        row.CfaExpression = s.CfaExpression;
                    }
                    break;
                case 0x0c: row.CfaRegister = (int)Math.Min(c.Uleb(), int.MaxValue); row.CfaOffset = (long)c.Uleb(); row.CfaExpression = null; break;
                case 0x0d: row.CfaRegister = (int)Math.Min(c.Uleb(), int.MaxValue); row.CfaExpression = null; break;
                case 0x0e: row.CfaOffset = (long)c.Uleb(); break;
                case 0x0f: row.CfaExpression = Block(ref c); break;
                case 0x10: { ulong r = c.Uleb(); var e = Block(ref c); if (r < CfiRow.RegisterCount) row.Rules[r] = new RegisterRule { Kind = RuleKind.Expression, Expression = e }; break; }
                case 0x11: { ulong r = c.Uleb(); SetRule(row, r, RuleKind.Offset, c.Sleb() * cie.DataAlign); break; }
                case 0x12: row.CfaRegister = (int)Math.Min(c.Uleb(), int.MaxValue); row.CfaOffset = c.Sleb() * cie.DataAlign; row.CfaExpression = null; break;
                case 0x13: row.CfaOffset = c.Sleb() * cie.DataAlign; break;
                case 0x14: { ulong r = c.Uleb(); SetRule(row, r, RuleKind.ValOffset, (long)c.Uleb() * cie.DataAlign); break; }
                case 0x15: { ulong r = c.Uleb(); SetRule(row, r, RuleKind.ValOffset, c.Sleb() * cie.DataAlign); break; }
                case 0x16: { ulong r = c.Uleb(); var e = Block(ref c); if (r < CfiRow.RegisterCount) row.Rules[r] = new RegisterRule { Kind = RuleKind.ValExpression, Expression = e }; break; }
                case 0x2e: c.Uleb(); break; // DW_CFA_GNU_args_size
                case 0x2f: { ulong r = c.Uleb(); SetRule(row, r, RuleKind.Offset, -(long)c.Uleb() * cie.DataAlign); break; }
                default: throw new BadInputFormatException($"{_name}: unknown CFA instruction 0x{op:x2}.");
            }
        }
    }

    private static byte[] Block(ref DwarfCursor c)
    {
        ulong len = c.Uleb();
        if (len > int.MaxValue) throw new BadInputFormatException("DWARF expression block is too long.");
        return c.Bytes((int)len).ToArray();
    }

    private static void SetRule(CfiRow row, ulong reg, RuleKind kind, long offset)
    {
        if (reg < CfiRow.RegisterCount) row.Rules[reg] = new RegisterRule { Kind = kind, Offset = offset };
    }

    private static void Restore(CfiRow row, CfiRow? initial, ulong reg)
    {
        if (reg < CfiRow.RegisterCount) row.Rules[reg] = initial is null ? default : initial.Rules[reg];
    }
}
