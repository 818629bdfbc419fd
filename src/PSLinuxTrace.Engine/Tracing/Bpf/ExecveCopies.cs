namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>
/// An execve whose entry copies faulted (a fork child touching a string literal for the first time:
/// fork copies no page table entries of file mappings) cannot be copied again at its exit, since
/// a successful execve replaced that memory. The exec record then carries what the kernel made of
/// the arguments: the filename (bprm->filename) and the new stack's argv and envp areas. This puts
/// them where the decoder will look: strings at the argv pointers (made-up kernel-half pointers when
/// the pointer array itself faulted; they are never shown), and an envp array of the right length.
/// </summary>
internal static class ExecveCopies
{
    private const ulong MadeUpPointers = 0xffff_8000_0000_0000;   // never a user address
    private const int ArgvShown = 32;                               // what the decoder shows (StringArray)

    public static void Complete(string name, ulong[] args, List<Copy> copies, IReadOnlyList<Copy> image)
    {
        int pathArg = name == "execve" ? 0 : 1;
        Copy? filename = image.FirstOrDefault(c => c.Kind == CopyKind.String && c.Argument == 0);
        Copy? argv = image.FirstOrDefault(c => c.Kind == CopyKind.Memory && c.Argument == 1 && !c.Faulted && !c.Cut);
        Copy? envp = image.FirstOrDefault(c => c.Kind == CopyKind.Memory && c.Argument == 2 && !c.Faulted && !c.Cut);
        // execveat's bprm->filename is "/dev/fd/N/path" for a relative path: only execve's is the argument itself.
        if (name == "execve" && filename is not null && args[0] != 0 && !HasGood(copies, args[0], CopyKind.String))
            copies.Add(new Copy(args[0], 0, CopyKind.String, 0, filename.Data));
        if (argv is not null && args[pathArg + 1] != 0) CompleteArray(copies, args[pathArg + 1], (byte)(pathArg + 1), Split(argv.Data), withStrings: true);
        if (envp is not null && args[pathArg + 2] != 0) CompleteArray(copies, args[pathArg + 2], (byte)(pathArg + 2), Split(envp.Data), withStrings: false);
    }

    private static void CompleteArray(List<Copy> copies, ulong array, byte arg, List<byte[]> strings, bool withStrings)
    {
        Copy? pointers = copies.FirstOrDefault(c => c.Kind == CopyKind.Memory && c.Address == array && !c.Faulted);
        int n = withStrings ? Math.Min(strings.Count, ArgvShown) : strings.Count;
        var made = new ulong[n];
        for (int i = 0; i < n; i++)
        {
            made[i] = pointers is not null && (i + 1) * 8 <= pointers.Data.Length
                ? BitConverter.ToUInt64(pointers.Data, i * 8)
                : MadeUpPointers + (ulong)i * 0x10000;
        }
        if (pointers is null || made.Any(p => p == 0))
        {
            // The array as the kernel read it: n pointers and the NULL after them.
            byte[] data = new byte[8 * (n + 1)];
            for (int i = 0; i < n; i++)
            {
                if (made[i] == 0) made[i] = MadeUpPointers + (ulong)i * 0x10000;
                BitConverter.TryWriteBytes(data.AsSpan(8 * i), made[i]);
            }
            copies.Add(new Copy(array, arg, CopyKind.Memory, 0, data));
        }
        if (!withStrings) return;
        for (int i = 0; i < n; i++)
            if (!HasGood(copies, made[i], CopyKind.String)) copies.Add(new Copy(made[i], arg, CopyKind.String, 0, strings[i]));
    }

    private static bool HasGood(List<Copy> copies, ulong address, CopyKind kind) =>
        copies.Any(c => c.Kind == kind && c.Address == address && !c.Faulted);

    /// <summary>NUL-terminated strings back to back, each kept with its NUL.</summary>
    private static List<byte[]> Split(byte[] area)
    {
        var list = new List<byte[]>();
        int start = 0;
        for (int i = 0; i < area.Length; i++)
            if (area[i] == 0) { list.Add(area[start..(i + 1)]); start = i + 1; }
        return list;
    }
}
