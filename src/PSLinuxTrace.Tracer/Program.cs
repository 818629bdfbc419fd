using System.Runtime.InteropServices;
using PSLinuxTrace.Engine.Host;

// The terminal's Ctrl+C reaches every process of pwsh's foreground group, this one included: the
// user's pwsh turns it into a Cancel frame, so here it is ignored (a handled signal, unlike SIG_IGN,
// is reset to its default in the programs this process launches). SIGTERM and SIGHUP (the terminal
// went away) end the job the clean way: tracees detached, launched programs killed.
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
using var quit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, c => c.Cancel = true);
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; TracerServer.CancelFromSignal(); });
using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; TracerServer.CancelFromSignal(); });

// Its standard streams are the user's (a program it launches inherits them); the job comes over the
// socket that the user's process named on the command line.
if (args.Length != 2 || args[0] != TracerServer.ConnectOption)
{
    Console.Error.WriteLine("pslinuxtrace-tracer runs the PSLinuxTrace module's ptrace jobs; the module starts it.");
    return 2;
}
return TracerServer.Run(args[1]);
