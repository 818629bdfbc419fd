// The managed half of the .NET fixture: Main -> Outer -> CallNative -P/Invoke-> pslt_native_call ->
// pslt_native_inner -> OnCallback (an UnmanagedCallersOnly method) -> Crash -P/Invoke->
// pslt_native_crash (SIGSEGV) in "crash" mode, or -> Wait (blocks in Thread.Sleep) in "wait" mode.
using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;

namespace PsltFixture;

public static unsafe class Program
{
    [DllImport("libpslt_native", EntryPoint = "pslt_native_call")]
    private static extern void NativeCall(delegate* unmanaged<int, void> callback, int mode);

    [DllImport("libpslt_native", EntryPoint = "pslt_native_crash")]
    private static extern void NativeCrash();

    public static int Main(string[] args)
    {
        int mode = args.Length > 0 && args[0] == "crash" ? 1 : 0;
        Console.WriteLine($"pid={Environment.ProcessId}");
        Console.WriteLine($"tid={Gettid()}");
        Console.Out.Flush();
        Outer(mode);
        return 0;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Outer(int mode) => CallNative(mode);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CallNative(int mode) => NativeCall(&OnCallback, mode);

    [UnmanagedCallersOnly]
    private static void OnCallback(int mode)
    {
        if (mode == 1) Crash();
        else Wait();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Crash() => NativeCrash();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Wait()
    {
        Console.WriteLine("ready");
        Console.Out.Flush();
        while (true) Thread.Sleep(1000);
    }

    [DllImport("libc", EntryPoint = "gettid")]
    private static extern int Gettid();
}
