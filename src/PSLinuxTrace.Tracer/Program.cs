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

using var input = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(0, ownsHandle: false), FileAccess.Read, 1);
using var output = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(1, ownsHandle: false), FileAccess.Write, 1);
return TracerServer.Run(input, output);
