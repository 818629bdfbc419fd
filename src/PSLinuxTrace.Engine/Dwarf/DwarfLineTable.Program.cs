using System.Runtime.CompilerServices;
namespace PSLinuxTrace.Engine.Dwarf;

internal sealed partial class DwarfLineTable
{
    /// <summary>The line-number state machine (DWARF 5 §6.2.2, §6.2.5) over the program bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunProgram(ref DwarfReader r, ProgramParameters p, List<FileEntry> files, List<DwarfLineRow> rows, List<Sequence> sequences)
    {
        var m = new Machine(p, rows, sequences);
        while (!r.AtEnd)
        {
            byte op = r.U8();
            if (op >= p.OpcodeBase)
            {
                // A special opcode: advance address and line together, then append a row.
                int adjusted = op - p.OpcodeBase;
                m.Advance((ulong)(adjusted / p.LineRange));
                m.Line = unchecked((uint)(m.Line + p.LineBase + adjusted % p.LineRange));
                m.Emit(false);
                continue;
            }
            switch (op)
            {
                case 0: Extended(ref r, m, files); break;
                case DwLine.Copy: m.Emit(false); break;
                case DwLine.AdvancePc: m.Advance(r.Uleb()); break;
                case DwLine.AdvanceLine: m.Line = unchecked((uint)(m.Line + r.Sleb())); break;
                case DwLine.SetFile: m.File = r.Uleb(); break;
                case DwLine.SetColumn: m.Column = r.Uleb(); break;
                case DwLine.NegateStmt: m.IsStmt = !m.IsStmt; break;
                case DwLine.SetBasicBlock or DwLine.SetPrologueEnd or DwLine.SetEpilogueBegin: break;
                case DwLine.ConstAddPc: m.Advance((ulong)((255 - p.OpcodeBase) / p.LineRange)); break;
                case DwLine.FixedAdvancePc: m.Address = unchecked(m.Address + r.U16()); m.OpIndex = 0; break;
                case DwLine.SetIsa: r.Uleb(); break;
                default:
                    // An opcode this version does not define: skip the ULEB128 operands the header declares for it.
                    for (int i = 0; i < p.StandardOpcodeLengths[op - 1]; i++) r.Uleb();
                    break;
            }
        }
        // Rows after the last end_sequence belong to no complete sequence and are dropped.
        m.DropUnterminated();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Extended(ref DwarfReader r, Machine m, List<FileEntry> files)
    {
        ulong length = r.Uleb();
        if (length == 0) return;
        ulong end = r.Position + Math.Min(length, r.Remaining);
        if (length > r.Remaining) throw r.Bad($"extended opcode of {length} bytes runs past the line program");
        byte op = r.U8();
        switch (op)
        {
            case DwLine.EndSequence: m.Emit(true); break;
            case DwLine.SetAddress:
                ulong size = length - 1;
                if (size is 4 or 8) { m.Address = r.UInt((int)size); m.OpIndex = 0; }
                break;
            case DwLine.DefineFile:
                string name = r.CString();
                ulong dir = r.Uleb();
                files.Add(new FileEntry(name, dir));
                break;
            case DwLine.SetDiscriminator: break;
        }
        // Whatever the opcode read, the next one starts where its length says.
        r.Position = end;
    }

    /// <summary>The state machine's registers and the rows it appends.</summary>
    private sealed class Machine(ProgramParameters p, List<DwarfLineRow> rows, List<Sequence> sequences)
    {
        public ulong Address, File = 1, Column;
        public uint Line = 1, OpIndex;
        public bool IsStmt = p.DefaultIsStmt;
        private int _sequenceStart = rows.Count;
        private bool _sorted = true;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Advance(ulong operationAdvance)
        {
            if (p.MaxOpsPerInstruction == 1)
            {
                Address = unchecked(Address + p.MinInstructionLength * operationAdvance);
                return;
            }
            // VLIW: op_index counts operations within an instruction (DWARF 5 §6.2.5.1).
            ulong ops = unchecked(OpIndex + operationAdvance);
            Address = unchecked(Address + p.MinInstructionLength * (ops / p.MaxOpsPerInstruction));
            OpIndex = (uint)(ops % p.MaxOpsPerInstruction);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Emit(bool endSequence)
        {
            var row = new DwarfLineRow(Address, File > uint.MaxValue ? uint.MaxValue : (uint)File, Line,
                Column > uint.MaxValue ? uint.MaxValue : (uint)Column, IsStmt, endSequence);
            int count = rows.Count - _sequenceStart;
            // bfd keeps only the last of several rows at one address (PR ld/4986).
            if (count > 0 && rows[^1].Address == Address && rows[^1].EndSequence == endSequence) rows[^1] = row;
            else
            {
                if (count > 0 && !endSequence && Address < rows[^1].Address) _sorted = false;
                rows.Add(row);
            }
            if (endSequence) EndSequence();
        }

        private void EndSequence()
        {
            int first = _sequenceStart, count = rows.Count - first;
            if (!_sorted && count > 2)
            {
                // Out-of-order rows (a compiler bug): sort all but the end row, stably, as bfd inserts them.
                var body = rows.GetRange(first, count - 1).OrderBy(x => x.Address).ToList();
                for (int i = 0; i < body.Count; i++) rows[first + i] = body[i];
            }
            sequences.Add(new Sequence(rows[first].Address, rows[^1].Address, first, count));
            _sequenceStart = rows.Count;
            _sorted = true;
            Address = 0; File = 1; Line = 1; Column = 0; OpIndex = 0; IsStmt = p.DefaultIsStmt;
        }

        public void DropUnterminated() => rows.RemoveRange(_sequenceStart, rows.Count - _sequenceStart);
    }
}
