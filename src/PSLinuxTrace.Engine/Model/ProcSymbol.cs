namespace PSLinuxTrace.Engine.Model;

/// <summary>
/// Where one ELF symbol lives in one running process: Get-ProcSymbol's output.
/// <para>
/// <see cref="Address"/> is the run-time virtual address (load bias + st_value). For TLS symbols
/// (Kind Tls) it is the offset of the variable inside the module's TLS block, which every thread
/// has its own copy of. <see cref="ModuleBase"/> is the load bias: what the dynamic linker added to
/// the file's virtual addresses (0 for non-PIE executables).
/// </para>
/// </summary>
public sealed record ProcSymbol(
    int Pid,
    string ProcessName,
    string Name,
    ulong Address,
    ulong Size,
    ElfSymbolKind Kind,
    ElfSymbolBinding Binding,
    string Source,
    string? Version,
    string ModulePath,
    ulong ModuleBase,
    string? BuildId,
    bool ModuleDeleted)
{
    public override string ToString() => $"{Name} @ 0x{Address:x} in {ProcessName}[{Pid}] ({ModulePath})";
}
