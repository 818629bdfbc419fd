using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

// posix_spawn(3). glibc implements it with clone(CLONE_VM | CLONE_VFORK), which is safe to call from a
// managed thread (fork() is not). The child is a child of the *calling thread*, which matters for
// waitpid(..., __WNOTHREAD) and for ptrace: call it from the tracer thread.
internal static partial class LibC
{
    // glibc: posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336; over-allocate.
    private const int FileActionsSize = 256, SpawnAttrSize = 512;

    [LibraryImport(Lib)]
    private static unsafe partial int posix_spawn(out int pid, byte* path, void* file_actions, void* attrp, byte** argv, byte** envp);

    [LibraryImport(Lib)]
    private static unsafe partial int posix_spawn_file_actions_init(void* fa);

    [LibraryImport(Lib)]
    private static unsafe partial int posix_spawn_file_actions_destroy(void* fa);

    [LibraryImport(Lib)]
    private static unsafe partial int posix_spawn_file_actions_addopen(void* fa, int fd, byte* path, int oflag, int mode);

    /// <summary>
    /// Spawns <paramref name="path"/> with <paramref name="argv"/> (argv[0] included) and
    /// <paramref name="envp"/> ("NAME=value"). A non-null redirect opens that file on fd 0, 1 or 2.
    /// Returns the pid; throws the errno as an engine exception.
    /// </summary>
    internal static unsafe int Spawn(string path, IReadOnlyList<string> argv, IReadOnlyList<string> envp,
        string? stdinPath = null, string? stdoutPath = null, string? stderrPath = null)
    {
        var allocations = new List<nint>();
        byte* Utf8(string s)
        {
            nint p = Marshal.StringToCoTaskMemUTF8(s);
            allocations.Add(p);
            return (byte*)p;
        }
        byte** Vector(IReadOnlyList<string> items)
        {
            nint block = Marshal.AllocCoTaskMem((items.Count + 1) * sizeof(nint));
            allocations.Add(block);
            byte** v = (byte**)block;
            for (int i = 0; i < items.Count; i++) v[i] = Utf8(items[i]);
            v[items.Count] = null;
            return v;
        }

        void* fa = NativeMemory.AllocZeroed(FileActionsSize);
        try
        {
            posix_spawn_file_actions_init(fa);
            if (stdinPath is not null) posix_spawn_file_actions_addopen(fa, 0, Utf8(stdinPath), O_RDONLY, 0);
            if (stdoutPath is not null) posix_spawn_file_actions_addopen(fa, 1, Utf8(stdoutPath), O_WRONLY | O_CREAT | O_TRUNC, 0x1a4 /* 0644 */);
            if (stderrPath is not null) posix_spawn_file_actions_addopen(fa, 2, Utf8(stderrPath), O_WRONLY | O_CREAT | O_TRUNC, 0x1a4);
            int rc = posix_spawn(out int pid, Utf8(path), fa, null, Vector(argv), Vector(envp));
            // posix_spawn returns the error number rather than setting errno.
            if (rc != 0) throw Errno.ToException(rc, "posix_spawn", 0, path);
            return pid;
        }
        finally
        {
            posix_spawn_file_actions_destroy(fa);
            NativeMemory.Free(fa);
            foreach (nint p in allocations) Marshal.FreeCoTaskMem(p);
        }
    }
}
