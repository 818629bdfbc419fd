namespace PSLinuxTrace.Engine.Access;

/// <summary>
/// The process the user works in (their pwsh). Ptrace jobs run in a tracer process of their own, which
/// sets this to its client's pid, so that "this session's own process" means the user's everywhere.
/// </summary>
public static class UserProcess
{
    public static int Id { get; internal set; } = Environment.ProcessId;
}
