// pslinuxtrace-clrmd: serves one .NET target's managed frames to the module over stdin and stdout
// (PSLinuxTrace.Engine.Managed.ClrMdWorkerServer has the protocol).
return PSLinuxTrace.Engine.Managed.ClrMdWorkerServer.Run(Console.OpenStandardInput(), Console.OpenStandardOutput());
